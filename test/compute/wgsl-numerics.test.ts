// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { fmaF32 } from '../../src/main/engine/methods/numerics';
import { bitsToF32, f32Bits } from '../../src/main/engine/safetensors/convert';
import { NUMERICS_WGSL } from '../../src/main/engine/compute/wgsl';
import { rng } from './samples';

const f = Math.fround;
type Env = { create: (flags: string[]) => GPU };

/** Dawn must keep its GPU object reachable while a device from it is in use. */
const instances: GPU[] = [];

async function openDevice(): Promise<GPUDevice | undefined> {
  const { create } = (await import('webgpu')) as unknown as Env;
  for (const flags of [[], ['backend=opengles']]) {
    const gpu = create(flags);
    instances.push(gpu);
    const adapter = await gpu.requestAdapter(flags.length ? { featureLevel: 'compatibility' } : {});
    if (adapter) return adapter.requestDevice();
  }
  return undefined;
}

const device = await openDevice().catch(() => undefined);
if (!device) console.warn('\n*** WGSL NUMERICS TESTS SKIPPED: no WebGPU adapter.\n');
afterAll(() => device?.destroy());

/** Runs `expr` (over a, b, c) once per row of `rows` on the device; returns the f32 results. */
async function evaluate(expr: string, rows: [number, number, number][]): Promise<Float32Array> {
  const d = device!;
  const code = `struct Params { zero: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${NUMERICS_WGSL}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= arrayLength(&dst)) { return; }
  let a = src[g.x].x; let b = src[g.x].y; let c = src[g.x].z;
  dst[g.x] = ${expr};
}`;
  const input = new Float32Array(rows.length * 4);
  rows.forEach(([a, b, c], i) => input.set([a, b, c, 0], 4 * i));
  const usage = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 0x40, STORAGE: 0x80 };
  const params = d.createBuffer({ size: 16, usage: usage.UNIFORM | usage.COPY_DST });
  const src = d.createBuffer({ size: input.byteLength, usage: usage.STORAGE | usage.COPY_DST });
  const dst = d.createBuffer({ size: rows.length * 4, usage: usage.STORAGE | usage.COPY_SRC });
  const read = d.createBuffer({ size: rows.length * 4, usage: usage.MAP_READ | usage.COPY_DST });
  d.queue.writeBuffer(params, 0, new Uint32Array(4));
  d.queue.writeBuffer(src, 0, input);
  const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module: d.createShaderModule({ code }), entryPoint: 'main' } });
  const group = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [params, src, dst].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const encoder = d.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(Math.ceil(rows.length / 64));
  pass.end();
  encoder.copyBufferToBuffer(dst, 0, read, 0, rows.length * 4);
  d.queue.submit([encoder.finish()]);
  await read.mapAsync(1);
  const out = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const b of [params, src, dst, read]) b.destroy();
  return out;
}

function randomF32(random: () => number, minExp: number, maxExp: number): number {
  const exp = minExp + Math.floor(random() * (maxExp - minExp + 1));
  return bitsToF32(((random() < 0.5 ? 0x80000000 : 0) | ((exp + 127) << 23) | Math.floor(random() * 0x800000)) >>> 0);
}

function mismatches(got: Float32Array, want: (i: number) => number, rows: [number, number, number][]): string[] {
  const bad: string[] = [];
  for (let i = 0; i < rows.length && bad.length < 5; i++) {
    const w = want(i);
    if (f32Bits(got[i]!) !== f32Bits(w)) bad.push(`${rows[i]!.join(', ')}: got ${got[i]}, want ${w}`);
  }
  return bad;
}

describe.skipIf(!device)('WGSL exact arithmetic on the device', () => {
  it('fma_rn equals a single-rounding fma, ties and cancellations included', async () => {
    const random = rng(11);
    const rows: [number, number, number][] = [];
    for (let i = 0; i < 200_000; i++) {
      const a = randomF32(random, -40, 40);
      const b = randomF32(random, -40, 40);
      const kind = i % 4;
      // Hard cases: c cancels the product's leading bits, or sits half an ulp from it.
      const c = kind === 0 ? randomF32(random, -80, 80) : kind === 1 ? -f(a * b) : kind === 2 ? f(-f(a * b) * (1 + 2 ** -23)) : f(a * b) * 2 ** -24;
      rows.push([a, b, c]);
    }
    // Products and sums near the ends of the range, where the kernel scales by 2^±64.
    for (let i = 0; i < 20_000; i++) {
      const big = i % 2 === 0;
      rows.push([randomF32(random, big ? 60 : -70, big ? 100 : -40), randomF32(random, big ? 20 : -70, big ? 64 : -40), randomF32(random, big ? 60 : -100, big ? 127 : -76)]);
    }
    const got = await evaluate('fma_rn(a, b, c)', rows);
    expect(mismatches(got, (i) => fmaF32(rows[i]![0], rows[i]![1], rows[i]![2]), rows)).toEqual([]);
  });

  it('div_refine turns a quotient up to 2 ulps off into the correctly rounded one', async () => {
    const random = rng(12);
    const rows: [number, number, number][] = [];
    for (let i = 0; i < 100_000; i++) {
      const a = randomF32(random, -99, 99);
      const b = randomF32(random, -27, 27);
      const nudge = (i % 5) - 2;
      if (Math.abs(a / b) < 2 ** -126) continue; // a subnormal quotient: the device's '/' stands
      rows.push([a, b, bitsToF32(f32Bits(f(a / b)) + nudge)]);
    }
    const got = await evaluate('div_refine(a, b, c)', rows);
    expect(mismatches(got, (i) => f(rows[i]![0] / rows[i]![1]), rows)).toEqual([]);
  });
});
