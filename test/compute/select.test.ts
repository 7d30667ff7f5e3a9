// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { FallbackBackend, selectBackend } from '../../src/main/engine/compute/select-backend';
import { hostArray, type ComputeBackend } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu, type WebGpuBackend } from '../../src/main/engine/compute/webgpu-backend';
import { tempDir } from '../helpers';
import { asHost, firstDifference, rng, weights } from './samples';

const probe = await openWebGpu();
const adapter = 'backend' in probe ? probe.backend.adapter : undefined;
if ('backend' in probe) await probe.backend.dispose();
else console.warn(`\n*** GPU SELECTION TESTS SKIPPED: ${probe.reason}\n`);

/** Whether two types are the same (not merely assignable one to the other). */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Params<F> = F extends (...args: infer P) => unknown ? P : never;
/** Whether each of ComputeBackend's methods that B has takes the same parameters (a dropped optional one still type-checks as an implementation). */
type TakesEveryParameter<B> = { [K in keyof ComputeBackend & keyof B]: Same<Params<B[K]>, Params<NonNullable<ComputeBackend[K]>>> }[keyof ComputeBackend & keyof B] extends true ? true : false;
// Fail to compile (npm run typecheck) where one does not: it would drop, or not pass on, a call's step.
const takeEveryParameter: [TakesEveryParameter<FallbackBackend>, TakesEveryParameter<WebGpuBackend>, TakesEveryParameter<WasmBackend>, TakesEveryParameter<ReferenceBackend>] = [true, true, true, true];

describe('selectBackend', () => {
  it('every backend, FallbackBackend too, takes every parameter of ComputeBackend\'s methods (checked by the type checker)', () => {
    expect(takeEveryParameter).toEqual([true, true, true, true]);
  });

  it('--device cpu: WebAssembly SIMD on worker threads, and says so', async () => {
    const notices: string[] = [];
    const { backend, description } = await selectBackend({ device: 'cpu', onNotice: (m) => notices.push(m) });
    expect(backend).toBeInstanceOf(WasmBackend);
    expect(description).toMatch(/^CPU: WebAssembly SIMD/);
    expect(notices).toEqual([`computing on the ${description}`]);
    await backend.dispose();
  });

  it('--device gpu with no adapter at all: the CPU, with a warning', async () => {
    const notices: string[] = [];
    const { backend } = await selectBackend({ device: 'gpu', gpu: { dawnBackends: ['no-such-backend'] }, onNotice: (m) => notices.push(m) });
    expect(backend.kind).toBe('cpu');
    expect(notices.join('\n')).toMatch(/^WARNING: --device gpu, but no WebGPU adapter \(tried no-such-backend.*\); computing on the CPU/);
    await backend.dispose();
  });

  it.skipIf(!adapter)('--device gpu takes the adapter, even a software one, and names it', async () => {
    const notices: string[] = [];
    const { backend, description } = await selectBackend({ device: 'gpu', onNotice: (m) => notices.push(m) });
    expect(backend.kind).toBe('gpu');
    expect(description).toContain(adapter!.name);
    expect(notices[0]).toContain(description);
    await backend.dispose();
  });

  it.skipIf(!adapter)('--device auto passes a software adapter by for the CPU, or takes a hardware one', async () => {
    const notices: string[] = [];
    const { backend } = await selectBackend({ device: 'auto', onNotice: (m) => notices.push(m) });
    expect(backend.kind).toBe(adapter!.software ? 'cpu' : 'gpu');
    if (adapter!.software) expect(notices[0]).toContain(`the only GPU adapter is a software one (${adapter!.name})`);
    await backend.dispose();
  });
});

describe.skipIf(!adapter)('sort keys on a GPU run', () => {
  it("are built and sorted by the GPU backend's host CPU backend, through FallbackBackend too (TIES' and sce's ties)", async () => {
    const host = new WasmBackend({ workers: 1 });
    const opened = await openWebGpu({ host: () => host });
    if (!('backend' in opened)) throw new Error(opened.reason);
    const backend = new FallbackBackend(opened.backend, () => new WasmBackend({ workers: 1 }), () => undefined);
    expect(opened.backend.keySorter()).toBe(host);
    expect(backend.keySorter()).toBe(host);
    expect(host.keySorter()).toBe(host);
    await backend.dispose();
  });
});

describe.skipIf(!adapter)('device loss', () => {
  it('moves the call that saw it and the rest of the run to the CPU, saying so once, with the same bits', async () => {
    const opened = await openWebGpu({ windowElements: 1000 });
    if (!('backend' in opened)) throw new Error(opened.reason);
    const notices: string[] = [];
    const backend = new FallbackBackend(opened.backend, () => new WasmBackend({ workers: 1 }), (m) => notices.push(m));
    const reference = new ReferenceBackend();
    const random = rng(31);
    const a = asHost(weights(5000, random), 'BF16');
    const b = asHost(weights(5000, random), 'BF16');
    const want = hostArray('BF16', 5000);
    await reference.linear([a, b], [0.6, 0.4], true, want);

    const before = hostArray('BF16', 5000);
    await backend.linear([a, b], [0.6, 0.4], true, before);
    expect(backend.kind).toBe('gpu');
    opened.backend.simulateDeviceLoss();
    const after = hostArray('BF16', 5000);
    await backend.linear([a, b], [0.6, 0.4], true, after);
    const again = hostArray('BF16', 5000);
    await backend.linear([a, b], [0.6, 0.4], true, again);

    expect(backend.kind).toBe('cpu');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^WARNING: GPU device lost: .*; computing on the CPU: WebAssembly SIMD, 1 worker thread for the rest of the run$/);
    for (const out of [before, after, again]) expect(firstDifference(out, want)).toBe(-1);
    await backend.dispose();
  });
});

describe.skipIf(!adapter)('process exit', () => {
  it('Node exits on its own once the backend is disposed (dawn keeps no handle open)', async () => {
    const dir = await tempDir();
    const script = join(dir, 'run.mts');
    const root = resolve('src/main/engine/compute');
    await writeFile(
      script,
      `import { selectBackend } from ${JSON.stringify(join(root, 'select-backend.ts'))};
const { backend } = await selectBackend({ device: 'gpu' });
const a = { dtype: 'F32' as const, data: new Float32Array(1000).fill(1) };
const out = { dtype: 'F32' as const, data: new Float32Array(1000) };
await backend.blend2(0.5, a, 0.5, a, out);
await backend.dispose();
console.log('done', out.data[999]);
`,
    );
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { timeout: 30_000, env: { ...process.env, EGL_PLATFORM: 'surfaceless' } });
    expect(stdout.trim()).toBe('done 1');
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
