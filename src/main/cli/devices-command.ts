import { EXIT_CODES } from '../../shared/progress';
import { selectBackend } from '../engine/compute/select-backend';
import type { DeviceChoice } from '../engine/compute/types';
import { parseArgs, UsageError } from './args';

/** What `alloy devices --json` prints: where a merge with this `--device` would compute, and why. */
export interface DeviceReport {
  device: DeviceChoice;
  kind: 'cpu' | 'gpu';
  description: string;
  notices: string[];
}

/** `alloy devices [--device auto|cpu|gpu] [--json]`: opens the backend a merge would use, says which, closes it. */
export async function devicesCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, {
    device: { kind: 'string', description: 'auto | cpu | gpu (default auto)' },
    json: { kind: 'boolean', description: 'one JSON object on stdout' },
  });
  if (positionals.length) throw new UsageError('usage: alloy devices [--device auto|cpu|gpu] [--json]');
  const device = String(flags['device'] ?? 'auto') as DeviceChoice;
  if (!['auto', 'cpu', 'gpu'].includes(device)) throw new UsageError(`--device must be auto, cpu or gpu, not "${device}"`);
  const notices: string[] = [];
  const { backend, description } = await selectBackend({ device, onNotice: (m) => notices.push(m) });
  const report: DeviceReport = { device, kind: backend.kind, description, notices };
  await backend.dispose();
  process.stdout.write(flags['json'] ? `${JSON.stringify(report)}\n` : `${description}\n${notices.map((n) => `  ${n}\n`).join('')}`);
  return EXIT_CODES.ok;
}
