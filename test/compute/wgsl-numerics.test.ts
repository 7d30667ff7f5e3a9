// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { fmaF32 } from '../../src/main/engine/methods/numerics';
import { bitsToF32, f32Bits } from '../../src/main/engine/safetensors/convert';
import { NUMERICS_WGSL } from '../../src/main/engine/compute/wgsl';
import { edgeValues, rng } from './samples';

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

/**
 * Runs `expr` (an f32 over f32s a, b and c) on the device for each triple (a[i], b[i], c[i]) of bit
 * patterns (c 0 when not given), in dispatches of at most 1 M triples; returns the result's bits. Bits
 * go in and out as u32, so NaN payloads and subnormals reach the expression as they are.
 */
async function evaluateBits(expr: string, a: Uint32Array, b: Uint32Array, c?: Uint32Array): Promise<Uint32Array> {
  const d = device!;
  const code = `struct Params { zero: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${NUMERICS_WGSL}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  let i = g.y * n.x * 64u + g.x;
  if (i >= arrayLength(&dst)) { return; }
  let a = bitcast<f32>(src[i].x); let b = bitcast<f32>(src[i].y); let c = bitcast<f32>(src[i].z);
  dst[i] = bitcast<u32>(${expr});
}`;
  const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module: d.createShaderModule({ code }), entryPoint: 'main' } });
  const usage = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 0x40, STORAGE: 0x80 };
  const out = new Uint32Array(a.length);
  const batch = 1 << 20;
  for (let start = 0; start < a.length; start += batch) {
    const rows = Math.min(batch, a.length - start);
    const input = new Uint32Array(4 * rows);
    for (let i = 0; i < rows; i++) { input[4 * i] = a[start + i]!; input[4 * i + 1] = b[start + i]!; input[4 * i + 2] = c ? c[start + i]! : 0; }
    const params = d.createBuffer({ size: 16, usage: usage.UNIFORM | usage.COPY_DST });
    const src = d.createBuffer({ size: input.byteLength, usage: usage.STORAGE | usage.COPY_DST });
    const dst = d.createBuffer({ size: rows * 4, usage: usage.STORAGE | usage.COPY_SRC });
    const read = d.createBuffer({ size: rows * 4, usage: usage.MAP_READ | usage.COPY_DST });
    d.queue.writeBuffer(params, 0, new Uint32Array(4));
    d.queue.writeBuffer(src, 0, input);
    const group = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [params, src, dst].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const encoder = d.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    const groups = Math.ceil(rows / 64);
    const x = Math.min(groups, 65535);
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    pass.end();
    encoder.copyBufferToBuffer(dst, 0, read, 0, rows * 4);
    d.queue.submit([encoder.finish()]);
    await read.mapAsync(1);
    out.set(new Uint32Array(read.getMappedRange()), start);
    read.unmap();
    for (const buffer of [params, src, dst, read]) buffer.destroy();
  }
  return out;
}

/** The first few pairs whose device bits differ from Math.fround(a / b)'s (any NaN equals any NaN). */
function divisionMismatches(a: Uint32Array, b: Uint32Array, got: Uint32Array): string[] {
  const x = new Float32Array(a.buffer, a.byteOffset, a.length);
  const y = new Float32Array(b.buffer, b.byteOffset, b.length);
  const want = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) want[i] = x[i]! / y[i]!;
  const wantBits = new Uint32Array(want.buffer);
  const isNaN = (bits: number) => (bits & 0x7fffffff) > 0x7f800000;
  const bad: string[] = [];
  for (let i = 0; i < a.length && bad.length < 5; i++) {
    if (got[i] === wantBits[i] || (isNaN(got[i]!) && isNaN(wantBits[i]!))) continue;
    const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;
    bad.push(`${hex(a[i]!)} / ${hex(b[i]!)}: got ${hex(got[i]!)}, want ${hex(wantBits[i]!)}`);
  }
  return bad;
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

/** Bit patterns where division has its cases: zeros, subnormals, the normal range's ends, infinities, NaNs. */
const SPECIAL = [
  0, 1, 2, 3, 5, 0x00012345, 0x00100000, 0x003fffff, 0x00400000, 0x00400001, 0x007ffffe, 0x007fffff, 0x00800000, 0x00800001,
  0x00ffffff, 0x01000000, 0x0d800000, 0x1f800000, 0x33800000, 0x34000000, 0x3dcccccd, 0x3eaaaaab, 0x3f000000, 0x3f7fffff,
  0x3f800000, 0x3f800001, 0x3fffffff, 0x40000000, 0x40400000, 0x40a00000, 0x41200000, 0x4b000000, 0x5f800000, 0x71800000,
  0x7e800000, 0x7f000000, 0x7f7ffffe, 0x7f7fffff, 0x7f800000, 0x7f800001, 0x7fc00000, 0x7fffffff,
];

describe.skipIf(!device)('div_ieee: f32 division in integer arithmetic equals Math.fround(a / b)', () => {

  it('every pair of special values, both signs', async () => {
    const values = SPECIAL.flatMap((v) => [v, (v | 0x80000000) >>> 0]);
    const a = new Uint32Array(values.length ** 2);
    const b = new Uint32Array(values.length ** 2);
    values.forEach((x, i) => values.forEach((y, j) => { a[i * values.length + j] = x; b[i * values.length + j] = y; }));
    expect(divisionMismatches(a, b, await evaluateBits('div_ieee(a, b)', a, b))).toEqual([]);
  });

  it('4 M random bit patterns: any bits, near quotients, quotients at underflow and overflow', async () => {
    const random = rng(21);
    const n = 4 << 20;
    const a = new Uint32Array(n);
    const b = new Uint32Array(n);
    const bits = (exp: number) => ((random() < 0.5 ? 0x80000000 : 0) | (Math.max(0, Math.min(255, exp)) << 23) | Math.floor(random() * 0x800000)) >>> 0;
    for (let i = 0; i < n; i++) {
      const kind = i % 4;
      if (kind === 0) {
        a[i] = Math.floor(random() * 2 ** 32);
        b[i] = Math.floor(random() * 2 ** 32);
      } else {
        // Biased exponents whose difference puts the quotient near 1, near the subnormals (and in
        // them), or near the largest finite: ea - eb + 127 in [100, 154], [-30, 10] or [240, 260].
        const eb = Math.floor(random() * 256);
        const target = kind === 1 ? 100 + Math.floor(random() * 55) : kind === 2 ? -30 + Math.floor(random() * 41) : 240 + Math.floor(random() * 21);
        a[i] = bits(target + eb - 127);
        b[i] = bits(eb);
      }
    }
    expect(divisionMismatches(a, b, await evaluateBits('div_ieee(a, b)', a, b))).toEqual([]);
  });

  it('exact quotients and subnormal results that fall on a tie (rounded to even)', async () => {
    const random = rng(22);
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      // A subnormal (or small normal) over a power of two: halves, quarters... of the smallest subnormal.
      const x = i % 2 === 0 ? Math.floor(random() * 0x800000) : (((1 + Math.floor(random() * 3)) << 23) | Math.floor(random() * 0x800000)) >>> 0;
      const k = 1 + Math.floor(random() * 26);
      a.push(x);
      b.push(f32Bits(2 ** k));
      // A product c·y over y: exact quotient, nothing left over.
      const y = f32Bits(randomF32(random, -20, 20));
      const c = 1 + Math.floor(random() * 0xfff);
      a.push(f32Bits(f(bitsToF32(y) * c)));
      b.push(y);
    }
    const av = Uint32Array.from(a);
    const bv = Uint32Array.from(b);
    expect(divisionMismatches(av, bv, await evaluateBits('div_ieee(a, b)', av, bv))).toEqual([]);
  });
});

/** The first few triples whose device bits differ from fmaF32(a, b, c)'s (any NaN equals any NaN). */
function fmaMismatches(a: Uint32Array, b: Uint32Array, c: Uint32Array, got: Uint32Array): string[] {
  const isNaN = (bits: number) => (bits & 0x7fffffff) > 0x7f800000;
  const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;
  const bad: string[] = [];
  for (let i = 0; i < a.length && bad.length < 5; i++) {
    const want = f32Bits(fmaF32(bitsToF32(a[i]!), bitsToF32(b[i]!), bitsToF32(c[i]!)));
    if (got[i] === want || (isNaN(got[i]!) && isNaN(want))) continue;
    bad.push(`fma(${hex(a[i]!)}, ${hex(b[i]!)}, ${hex(c[i]!)}): got ${hex(got[i]!)}, want ${hex(want)}`);
  }
  return bad;
}

describe.skipIf(!device)('fma_rn equals fmaF32 bit for bit, tiny products and sums included', () => {
  it('every triple of special values, both signs (tiny ones at the thresholds of its paths)', async () => {
    const tiny = [0x0d7fffff, 0x0d800001, 0x19ffffff, 0x1a000000, 0x1a000001, 0x20800000, 0x207fffff, 0x26800000, 0x26800001, 0x2c7fffff, 0x0a000000, 0x06800000];
    const edges = Array.from(new Uint32Array(edgeValues().buffer));
    const values = [...new Set([...SPECIAL, ...tiny, ...edges].flatMap((v) => [v >>> 0, (v | 0x80000000) >>> 0]))];
    const n = values.length;
    const a = new Uint32Array(n ** 3);
    const b = new Uint32Array(n ** 3);
    const c = new Uint32Array(n ** 3);
    for (let i = 0; i < n ** 3; i++) {
      a[i] = values[i % n]!;
      b[i] = values[Math.floor(i / n) % n]!;
      c[i] = values[Math.floor(i / n ** 2)]!;
    }
    expect(fmaMismatches(a, b, c, await evaluateBits('fma_rn(a, b, c)', a, b, c))).toEqual([]);
  });

  it('4 M tiny triples: |a·b| < 2^-100, |c| < 2^-75, subnormal sums, exact ties, signed zeros, mixed signs', async () => {
    const random = rng(31);
    const n = 4 << 20;
    const a = new Uint32Array(n);
    const b = new Uint32Array(n);
    const c = new Uint32Array(n);
    const sign = () => (random() < 0.5 ? 0x80000000 : 0);
    const frac = () => Math.floor(random() * 0x800000);
    const odd = (bits: number) => 1 + 2 * Math.floor(random() * 2 ** (bits - 1));
    /** ±m · 2^e as f32 bits (m < 2^24, exact). */
    const make = (m: number, e: number) => f32Bits(f(m * 2 ** e)) | sign();
    const counts = { subnormalSum: 0, tie: 0, zero: 0, roundsToZero: 0 };
    for (let i = 0; i < n; i++) {
      const kind = i % 6;
      let x: number;
      let y: number;
      if (kind === 3) {
        // An exact tie at the subnormal rounding point: odd significands, the product odd · 2^-150.
        const ea = -149 + Math.floor(random() * 120);
        x = make(odd(1 + Math.floor(random() * 24)), ea);
        y = make(odd(1 + Math.floor(random() * 24)), -150 - ea);
      } else if (kind === 5) {
        // Short significands: the product is an f32, so c = -a·b sums to an exact 0.
        const ea = -140 + Math.floor(random() * 100);
        x = make(odd(1 + Math.floor(random() * 12)), ea);
        y = make(odd(1 + Math.floor(random() * 12)), -160 + Math.floor(random() * 40) - ea);
      } else if (kind === 4) {
        // A subnormal factor.
        x = (sign() | frac()) >>> 0;
        y = (sign() | ((127 + Math.floor(random() * 50) - 24) << 23) | frac()) >>> 0;
      } else {
        // Any factors whose product's exponent is in [-175, -101].
        const ea = -126 + Math.floor(random() * 200);
        const eb = -175 + Math.floor(random() * 75) - ea;
        x = (sign() | ((ea + 127) << 23) | frac()) >>> 0;
        y = (sign() | ((Math.max(0, Math.min(254, eb + 127))) << 23) | frac()) >>> 0;
      }
      const p = bitsToF32(x) * bitsToF32(y); // exact in f64
      if (!(Math.abs(p) < 2 ** -100) || p === 0) { i--; continue; }
      let z: number;
      const j = Math.floor(random() * 7) - 3;
      if (kind === 0 || kind === 4) {
        // Any small c: a subnormal or a normal up to 2^-76, either sign.
        z = (sign() | (Math.floor(random() * 52) << 23) | frac()) >>> 0;
        if ((z & 0x7fffffff) === 0) z = 1;
      } else if (kind === 1) {
        // c = -fl(a·b): the sum is the product's tail, subnormal.
        z = f32Bits(-f(p));
      } else if (kind === 5) {
        z = f32Bits(-p + (Math.abs(p) < 2 ** -126 ? j * 2 ** -149 : 0));
      } else if (kind === 2) {
        // c cancels the product to the subnormal grid, give or take a few of its steps (sums of
        // ±0 and ±2^-150, ties, among them); larger products: c = -fl(a·b) a few ulps away.
        z = Math.abs(p) < 2 ** -126 ? f32Bits(-Math.round(p * 2 ** 149) * 2 ** -149 + j * 2 ** -149) : (f32Bits(-f(p)) + j) >>> 0;
      } else {
        // Ties: c cancels all but the tail, or any subnormal c when the product is below 2^-126.
        z = Math.abs(p) < 2 ** -126 && random() < 0.5 ? (sign() | frac()) >>> 0 : f32Bits(-f(p));
      }
      if ((z & 0x7fffffff) === 0) z = (1 | sign()) >>> 0;
      a[i] = x;
      b[i] = y;
      c[i] = z;
      const sum = p + bitsToF32(z);
      if (Math.abs(sum) < 2 ** -126) counts.subnormalSum++;
      if (kind === 3 && Number.isInteger(sum * 2 ** 150) && Math.abs(sum * 2 ** 150) % 2 === 1) counts.tie++;
      if (sum === 0) counts.zero++;
      else if (fmaF32(bitsToF32(x), bitsToF32(y), bitsToF32(z)) === 0) counts.roundsToZero++;
    }
    // The integer path's cases are all there, in numbers.
    expect(counts.subnormalSum).toBeGreaterThan(n / 2);
    expect(counts.tie).toBeGreaterThan(n / 20);
    expect(counts.zero).toBeGreaterThan(n / 100);
    expect(counts.roundsToZero).toBeGreaterThan(n / 100);
    expect(fmaMismatches(a, b, c, await evaluateBits('fma_rn(a, b, c)', a, b, c))).toEqual([]);
  });
});
