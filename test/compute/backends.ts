// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import type { ComputeBackend } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu } from '../../src/main/engine/compute/webgpu-backend';

/** A backend to test, and whether its arrays are put in its own memory first (as the engine's buffer pool does). */
export type TestBackend = [label: string, backend: ComputeBackend, pin: boolean];

/**
 * The backends a method's ops are held to the reference on: the WASM backend on two workers and on
 * the calling thread (windows of 1,000), with its arrays in its own memory, and the GPU (windows of
 * 1,000) where an adapter exists; where none does, says so loudly. The caller disposes them.
 */
export async function testBackends(name: string): Promise<TestBackend[]> {
  const opened = await openWebGpu({ windowElements: 1000 });
  const gpu = 'backend' in opened ? opened.backend : undefined;
  if (!gpu) console.warn(`\n*** WebGPU ${name} TESTS SKIPPED: ${'reason' in opened ? opened.reason : ''}.\n`);
  return [
    ['WASM, 2 workers, windows of 1,000', new WasmBackend({ workers: 2, windowElements: 1000 }), false],
    ['WASM, calling thread, windows of 1,000', new WasmBackend({ workers: 0, windowElements: 1000 }), false],
    ['WASM, 1 worker, arrays in its own memory', new WasmBackend({ workers: 1 }), true],
    ...(gpu ? [[`GPU (${gpu.description})`, gpu, false] as TestBackend] : []),
  ];
}
