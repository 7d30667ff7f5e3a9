import { EngineError } from '../engine/errors';
import { closestKey } from '../engine/recipe/suggest';

export class UsageError extends EngineError {}

type FlagKind = 'boolean' | 'string';

export interface FlagSpec {
  kind: FlagKind;
  description: string;
  /** Accepted for mergekit compatibility, changes nothing here. */
  ignored?: string;
}

export interface ParsedArgs {
  positionals: string[];
  flags: Record<string, string | boolean>;
  warnings: string[];
}

/** Parses `--flag`, `--flag value`, `--flag=value` and `--no-flag` against a table; unknown flags are errors. */
export function parseArgs(argv: string[], specs: Record<string, FlagSpec>): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  const warnings: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = arg.slice(2, eq < 0 ? undefined : eq);
    let value: string | boolean | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    let spec = specs[name];
    if (!spec && name.startsWith('no-') && specs[name.slice(3)]?.kind === 'boolean' && value === undefined) {
      name = name.slice(3);
      spec = specs[name];
      value = false;
    }
    if (!spec) throw new UsageError(`unknown option --${name}${suggest(name, Object.keys(specs))}`);
    if (spec.kind === 'boolean') {
      if (typeof value === 'string') {
        if (value !== 'true' && value !== 'false') throw new UsageError(`--${name} takes no value`);
        value = value === 'true';
      }
      value ??= true;
    } else if (value === undefined) {
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`--${name} needs a value`);
      value = next;
    }
    if (spec.ignored) warnings.push(`--${name}: ${spec.ignored}`);
    flags[name] = value;
  }
  return { positionals, flags, warnings };
}

function suggest(name: string, known: string[]): string {
  return closestKey(name, known).replace(/"([^"]+)"/, '--$1');
}

/** mergekit's parse_kmb: "5B" → 5e9, "500M", "20K", or a plain integer. */
export function parseKmb(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMBkmb]?)$/.exec(text.trim());
  if (!match) throw new UsageError(`"${text}" is not a size like 5B, 500M, 20K or 1000000`);
  const scale = { '': 1, k: 1e3, m: 1e6, b: 1e9 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'b'];
  return Math.round(Number(match[1]) * scale);
}
