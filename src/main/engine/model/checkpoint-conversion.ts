import { EngineError } from '../errors';
import type { TensorEntry } from '../safetensors/reader';
import { ConcatenatedReader } from './concatenated-reader';
import type { ModelTensor } from './model-folder';

/**
 * A tensor transformers builds on load from one checkpoint tensor per expert: each source stacked over
 * the experts (a new axis 0, experts in numeric order), then the stacks concatenated along dim 1 in
 * the order given. For row-major data that is, for each expert in turn, each source's bytes in turn.
 */
interface FusedExperts {
  /** How the fused tensor's name ends, e.g. `.experts.gate_up_proj`; what comes before it is the prefix. */
  target: string;
  /** The per-expert tensors after the prefix, `*` standing for the expert's number. */
  sources: string[];
}

/** How a family's checkpoints are renamed and converted on load. */
interface CheckpointConversion {
  /** Substrings renamed (first occurrence) in every checkpoint tensor's name, before any fusing. */
  renames: [from: string, to: string][];
  fused: FusedExperts[];
  /** The config key holding the number of experts. */
  expertCount: string;
}

/**
 * Transcribed from transformers 5's `conversion_mapping.py` (which mergekit 0.1.5 applies on load,
 * `mergekit/architecture/conversion.py`), for the families Alloy defines with fused experts.
 */
export const CHECKPOINT_CONVERSIONS: Readonly<Record<string, CheckpointConversion>> = {
  // "mixtral": WeightRenaming .block_sparse_moe. -> .mlp.; w1 + w3 -> gate_up_proj; w2 -> down_proj.
  mixtral: {
    renames: [['.block_sparse_moe.', '.mlp.']],
    fused: [
      { target: '.experts.gate_up_proj', sources: ['.experts.*.w1.weight', '.experts.*.w3.weight'] },
      { target: '.experts.down_proj', sources: ['.experts.*.w2.weight'] },
    ],
    expertCount: 'num_local_experts',
  },
  // qwen3_moe uses "qwen2_moe": gate_proj + up_proj -> gate_up_proj; down_proj -> down_proj.
  qwen3_moe: {
    renames: [],
    fused: [
      { target: 'mlp.experts.gate_up_proj', sources: ['mlp.experts.*.gate_proj.weight', 'mlp.experts.*.up_proj.weight'] },
      { target: 'mlp.experts.down_proj', sources: ['mlp.experts.*.down_proj.weight'] },
    ],
    expertCount: 'num_experts',
  },
};

/**
 * Finds, in a checkpoint, a tensor under the name the architecture gives it, converting as
 * transformers does on load when the checkpoint stores it otherwise: renamed, or one tensor per expert.
 * Nothing is read: a converted tensor is a `ConcatenatedReader` over the checkpoint's tensors.
 */
export class CheckpointConverter {
  private readonly rules: CheckpointConversion | undefined;
  /** Checkpoint names under their renamed names, when the family renames. */
  private renamed: Map<string, ModelTensor> | undefined;
  private readonly converted = new Map<string, ModelTensor | undefined>();

  constructor(
    private readonly dir: string,
    private readonly config: Record<string, unknown>,
    private readonly tensors: ReadonlyMap<string, ModelTensor>,
  ) {
    const modelType = config['model_type'];
    this.rules = typeof modelType === 'string' && Object.hasOwn(CHECKPOINT_CONVERSIONS, modelType) ? CHECKPOINT_CONVERSIONS[modelType] : undefined;
  }

  /** The tensor named `name`: stored under that name, else converted; undefined when neither. */
  find(name: string): ModelTensor | undefined {
    const stored = this.tensors.get(name);
    if (stored || !this.rules) return stored;
    if (!this.converted.has(name)) this.converted.set(name, this.convert(name, this.rules));
    return this.converted.get(name);
  }

  private convert(name: string, rules: CheckpointConversion): ModelTensor | undefined {
    const renamed = this.renamedTensors(rules).get(name);
    if (renamed) return renamed;
    for (const fused of rules.fused) {
      if (name.endsWith(fused.target)) return this.fuse(name, name.slice(0, -fused.target.length), fused.sources, rules.expertCount);
    }
    return undefined;
  }

  private renamedTensors(rules: CheckpointConversion): Map<string, ModelTensor> {
    if (!this.renamed) {
      this.renamed = new Map();
      for (const [stored, tensor] of this.tensors) {
        let name = stored;
        for (const [from, to] of rules.renames) name = name.replace(from, to);
        if (!this.renamed.has(name)) this.renamed.set(name, tensor);
      }
    }
    return this.renamed;
  }

  /** The checkpoint tensor under a name after renaming. */
  private lookup(name: string): ModelTensor | undefined {
    return this.renamed!.get(name);
  }

  private fuse(name: string, prefix: string, sources: string[], countKey: string): ModelTensor | undefined {
    const experts = sources.map((source) => this.expertsOf(prefix + source));
    if (experts.every((found) => found.size === 0)) return undefined;
    const configured = this.config[countKey];
    const count = Number.isSafeInteger(configured) && (configured as number) > 0 ? (configured as number) : Math.max(...experts.flatMap((found) => [...found])) + 1;
    const countSource = count === configured ? `the config's ${countKey}` : 'the highest expert number';
    for (const [i, found] of experts.entries()) {
      const missing = Array.from({ length: count }, (_, e) => e).filter((e) => !found.has(e));
      const extra = [...found].filter((e) => e >= count).sort((a, b) => a - b);
      if (missing.length > 0 || extra.length > 0) {
        const pattern = prefix + sources[i]!;
        const problem = missing.length > 0 ? `no "${pattern.replace('*', String(missing[0]))}" (missing experts ${missing.join(', ')})` : `"${pattern}" also for experts ${extra.join(', ')}`;
        throw new EngineError(`${this.dir}: cannot build "${name}" from its per-expert tensors: ${count} experts (${countSource}), but ${problem}`, { file: this.dir, tensor: name });
      }
    }
    const parts: ModelTensor[] = [];
    for (let e = 0; e < count; e++) for (const source of sources) parts.push(this.lookup(prefix + source.replace('*', String(e)))!);
    const first = parts[0]!.entry;
    for (const { entry } of parts) {
      if (entry.dtype !== first.dtype || entry.shape.join(',') !== first.shape.join(',')) {
        throw new EngineError(
          `${this.dir}: cannot build "${name}" from its per-expert tensors: "${entry.name}" is ${entry.dtype} ${JSON.stringify(entry.shape)}, "${first.name}" is ${first.dtype} ${JSON.stringify(first.shape)}`,
          { file: this.dir, tensor: entry.name },
        );
      }
    }
    if (first.shape.length < 1) throw new EngineError(`${this.dir}: cannot build "${name}" from its per-expert tensors: "${first.name}" is a scalar`, { file: this.dir, tensor: first.name });
    // Stacking adds axis 0 (the experts); concatenating the sources joins along dim 1.
    const shape = [count, first.shape[0]! * sources.length, ...first.shape.slice(1)];
    const reader = new ConcatenatedReader(
      name,
      parts.map(({ reader, entry }) => ({ reader, tensor: entry.name, byteLength: entry.byteLength })),
    );
    const entry: TensorEntry = { name, dtype: first.dtype, shape, offset: first.offset, byteLength: reader.byteLength, numel: shape.reduce((a, b) => a * b, 1) };
    return { reader, entry, parts };
  }

  /** The expert numbers for which a tensor matching `pattern` (after renaming) exists. */
  private expertsOf(pattern: string): Set<number> {
    const [before, after] = pattern.split('*') as [string, string];
    const found = new Set<number>();
    for (const name of this.renamed!.keys()) {
      if (name.length <= before.length + after.length || !name.startsWith(before) || !name.endsWith(after)) continue;
      const middle = name.slice(before.length, name.length - after.length);
      if (/^\d+$/.test(middle)) found.add(Number(middle));
    }
    return found;
  }
}
