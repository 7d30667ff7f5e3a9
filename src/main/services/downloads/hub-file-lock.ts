import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * The lock Python's huggingface_hub takes around each blob it downloads (`filelock` on
 * `<cache>/.locks/models--org--name/<etag>.lock`): flock(2), exclusive. Node has no flock, so a
 * small helper process takes it and holds it until its stdin closes: perl (Linux, macOS), else
 * util-linux's flock(1). Both call flock(2), so Python, Alloy and other Alloys exclude each other.
 * Where neither exists (Windows) the lock is skipped and only Alloy's own downloads take turns.
 */

export type LockProgram = 'perl' | 'flock';

export interface FileLockOptions {
  signal?: AbortSignal;
  /** Another process holds the lock: called once, before waiting for it. */
  onBusy?: () => void;
  /** Which helper to use (tests). Default: the first that runs here. */
  program?: LockProgram;
}

export interface HeldFileLock {
  /** How it is held: a helper program, or not at all where none runs (or the file system has no flock). */
  via: LockProgram | 'none';
  /** Releases the lock; resolves once the helper has exited, so the lock is free. */
  release(): Promise<void>;
}

// Prints "busy" if another holds the lock, then "locked" once it has it; holds it until stdin closes.
const PERL = `use Fcntl qw(:flock O_RDWR O_CREAT);
sysopen(my $fh, $ARGV[0], O_RDWR | O_CREAT, 0644) or die "open: $!\\n";
$| = 1;
unless (flock($fh, LOCK_EX | LOCK_NB)) { print "busy\\n"; flock($fh, LOCK_EX) or die "flock: $!\\n"; }
print "locked\\n";
1 while sysread(STDIN, my $buffer, 4096);`;

const SH = `command -v flock >/dev/null || exit 127
exec 9>>"$1" || exit 3
if ! flock -n 9; then echo busy; flock 9 || exit 3; fi
echo locked
exec cat >/dev/null`;

const COMMANDS: Record<LockProgram, (path: string) => string[]> = {
  perl: (path) => ['perl', '-e', PERL, path],
  flock: (path) => ['sh', '-c', SH, 'alloy-lock', path],
};

/** The helper that runs on this machine, once found. */
let found: LockProgram | 'none' | undefined;

/** Takes the exclusive flock on `path` (created if missing), waiting while another process holds it. */
export async function acquireFileLock(path: string, options: FileLockOptions = {}): Promise<HeldFileLock> {
  options.signal?.throwIfAborted();
  await mkdir(dirname(path), { recursive: true });
  const programs: LockProgram[] = options.program ? [options.program] : found === undefined ? ['perl', 'flock'] : found === 'none' ? [] : [found];
  for (const program of programs) {
    const held = await tryHelper(program, path, options);
    if (held === 'missing') continue;
    if (!options.program) found = program;
    return held;
  }
  if (!options.program) found = 'none';
  return { via: 'none', release: async () => undefined };
}

function tryHelper(program: LockProgram, path: string, options: FileLockOptions): Promise<HeldFileLock | 'missing'> {
  const [command, ...args] = COMMANDS[program](path);
  const child: ChildProcessWithoutNullStreams = spawn(command!, args, { stdio: 'pipe' });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const release = async () => {
    child.stdin.end();
    await exited;
  };
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      child.kill('SIGKILL');
      reject(options.signal!.reason);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (value: HeldFileLock | 'missing') => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    child.on('error', (error: NodeJS.ErrnoException) => settle(error.code === 'ENOENT' ? 'missing' : { via: 'none', release: async () => undefined }));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'busy') options.onBusy?.();
      if (line === 'locked') settle({ via: program, release });
    });
    child.once('close', (code) => {
      // Ended without the lock: the helper is not usable here (127: not found by sh), or flock is refused by
      // this file system, where huggingface_hub falls back to no real lock as well.
      if (code === 127 || /not found/.test(stderr)) settle('missing');
      else settle({ via: 'none', release: async () => undefined });
    });
  });
}
