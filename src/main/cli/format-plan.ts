import { formatBytes } from '../../shared/format';
import type { MergePlan } from '../engine/plan/types';

/** The plan as a person reads it: models, shards, sizes, and every tensor with its sources. */
export function formatPlan(plan: MergePlan): string {
  const lines: string[] = [];
  lines.push(`method: ${plan.method}${plan.computeDtype ? ` (computing on ${plan.computeDtype} inputs)` : ''}`);
  lines.push('models:');
  for (const [i, m] of plan.models.entries()) lines.push(`  [${i}] ${m.reference}${plan.baseModel === i ? ' (base)' : ''}  ${m.path}`);
  lines.push(`reads ${formatBytes(plan.bytesToRead)}, writes ${formatBytes(plan.bytesToWrite)} in ${plan.shards.length} shard(s):`);
  for (const s of plan.shards) lines.push(`  ${s.file}  ${s.tensors.length} tensors, ${formatBytes(s.bytes)}`);
  lines.push(`tensors (${plan.tensors.length}):`);
  for (const t of plan.tensors) {
    const params = Object.entries(t.global).map(([k, v]) => `${k}=${v}`);
    const sources = t.inputs.map((i) => `[${i.model}]${i.tensor === t.name ? '' : ` ${i.tensor}`} ${i.dtype}${i.parts ? ` from ${i.parts.length} tensors` : `@${i.offset}`}`).join(', ');
    lines.push(`  ${t.name} ${t.dtype}[${t.shape.join(',')}] ${t.kind}${params.length ? ` ${params.join(' ')}` : ''} <- ${sources}`);
  }
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n') + '\n';
}
