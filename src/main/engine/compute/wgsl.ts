import type { FloatDtype } from '../safetensors/dtype';
import { f32Bits } from '../safetensors/convert';
import { NEARSWAP_MIN_DIFF } from './reference';
import { MAX_TASK_MODELS } from './types';

/**
 * WGSL for the elementwise kernels.
 *
 * Bits, not approximations: WGSL lets a compiler fuse `a * b + c` into one fma, re-associate, factor
 * `a*b + a*c`, and it fixes neither the rounding of `/` nor whether `fma()` is fused (on llvmpipe it
 * is not). So every f32 operation goes through `k()`, an xor with a uniform that is always 0: the
 * compiler cannot see through it, so each operation is rounded on its own, in the order written.
 * Where the reference needs a fused multiply-add (torch's addcmul) or a correctly rounded division,
 * they are built from exact two-product/two-sum steps (`fma_rn`, with integer code for tiny sums that
 * are subnormal; `div_rn`: exact where linear and nearswap divide), or, for any operands, from integer arithmetic (`div_ieee`: IEEE division with
 * subnormals, infinities and NaN, as Math.fround(a / b)). Format conversions are integer code, round
 * to nearest even, as in `safetensors/convert.ts`.
 *
 * Layout: `src` holds the window's inputs one after another, `P.seg` words apart; bf16 and f16 are
 * two to a u32 (element 2i in the low half). Each invocation computes two neighbouring elements, so
 * a packed output word is written whole.
 */

export type ElementwiseOp = 'linear' | 'nearswap' | 'blend2' | 'unitSum' | 'unitTangent';

/**
 * Where the per-input constants of unitSum and unitTangent sit in `Params.w` (f32 slots): divisors
 * from 0, weights from 16, dots from 32 (MAX_TASK_MODELS each), then UNIT_EXP.
 */
export const UNIT_DIVISORS = 0;
export const UNIT_WEIGHTS = 16;
export const UNIT_DOTS = 32;
/** unitTangent's exponential map: f(cos |t|) and f(sin |t| / |t|) in slots 48 and 49. */
export const UNIT_EXP = 48;

/** Most inputs one linear call takes: the weights live in a uniform array of vec4s. */
export const MAX_LINEAR_INPUTS = 64;
/** Size of the uniform block `Params` below, in bytes. */
export const PARAMS_BYTES = 32 + MAX_LINEAR_INPUTS * 4;

const HEADER = /* wgsl */ `
struct Params {
  n: u32,      // elements in this window
  seg: u32,    // u32 words from one input to the next in src
  count: u32,  // inputs
  zero: u32,   // always 0: the key of the barrier k()
  p0: f32,
  p1: f32,
  wide: u32,   // inputs of two dtypes: bit m set where input m is f32 (the others are the 16-bit one)
  flags: u32,
  w: array<vec4<f32>, ${MAX_LINEAR_INPUTS / 4}>,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
`;

/** Exact f32 helpers; see the comment at the top of this file. */
export const NUMERICS_WGSL = /* wgsl */ `
// An f32 the compiler cannot see through: nothing is fused, re-associated or factored across it.
fn k(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ P.zero); }
fn add(a: f32, b: f32) -> f32 { return k(a + b); }
fn sub(a: f32, b: f32) -> f32 { return k(a - b); }
fn mul(a: f32, b: f32) -> f32 { return k(a * b); }
fn absf(a: f32) -> f32 { return bitcast<f32>(bitcast<u32>(a) & 0x7fffffffu); }

// Splits a into hi (its top 12 significant bits, by masking: no overflow) and lo = a - hi (exact).
fn split(a: f32) -> vec2<f32> {
  let hi = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
  return vec2<f32>(hi, sub(a, hi));
}

// Dekker: (p, e) with p = fl(a*b) and p + e = a*b exactly, when |a*b| is in [2^-100, 2^128).
fn two_prod(a: f32, b: f32) -> vec2<f32> {
  let p = mul(a, b);
  let x = split(a);
  let y = split(b);
  let e = add(add(add(sub(mul(x.x, y.x), p), mul(x.x, y.y)), mul(x.y, y.x)), mul(x.y, y.y));
  return vec2<f32>(p, e);
}

// Knuth: (s, e) with s = fl(a+b) and s + e = a+b exactly.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = add(a, b);
  let bb = sub(s, a);
  return vec2<f32>(s, add(sub(a, sub(s, bb)), sub(b, bb)));
}

// a+b rounded to odd: when inexact, the neighbour of fl(a+b) whose last bit is 1.
fn add_odd(a: f32, b: f32) -> f32 {
  let t = two_sum(a, b);
  let bits = bitcast<u32>(t.x);
  if (t.y == 0.0 || (bits & 1u) == 1u) { return t.x; }
  return bitcast<f32>(select(bits - 1u, bits + 1u, (t.x > 0.0) == (t.y > 0.0)));
}

// a*b + c with one rounding (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums:
// proved algorithms using rounding to odd", 2008), where two_prod is exact.
fn fma_exact(a: f32, b: f32, c: f32) -> f32 {
  let u = two_prod(a, b);
  let t = two_sum(c, u.x);
  return add(t.x, add_odd(t.y, u.y));
}

// a*b + c with one rounding, as torch's addcmul on a CPU. Products outside Dekker's range are scaled
// by 2^±64. Where a*b and c are both tiny (below 2^-100 and 2^-75) and the sum is subnormal, scaling
// back would round twice: that sum is computed exactly in integers (fma_subnormal), rounded once.
fn fma_rn(a: f32, b: f32, c: f32) -> f32 {
  let p = mul(a, b);
  let ap = absf(p);
  // An infinite or NaN c: c itself when a and b are finite (their exact product is, even where p
  // overflowed), else the plain sum (inf + -inf, NaN).
  let finite_ab = (bitcast<u32>(a) & 0x7fffffffu) < 0x7f800000u && (bitcast<u32>(b) & 0x7fffffffu) < 0x7f800000u;
  if (!(absf(c) <= bitcast<f32>(0x7f7fffffu))) { return select(add(p, c), c, finite_ab); }
  // An exact zero product (IEEE's signed-zero sum): the plain sum is right.
  if (a == 0.0 || b == 0.0) { return add(p, c); }
  // A NaN input: NaN (the paths below would keep c where |c| swamps a tiny or scaled product).
  if ((bitcast<u32>(p) & 0x7fffffffu) > 0x7f800000u) { return p; }
  if (ap >= bitcast<f32>(0x0d800000u) && ap < bitcast<f32>(0x71800000u)) { return fma_exact(a, b, c); }  // 2^-100 <= |a*b| < 2^100
  let a_is_big = absf(a) >= absf(b);
  let big = select(b, a, a_is_big);
  let small = select(a, b, a_is_big);
  if (ap >= bitcast<f32>(0x71800000u)) {
    if (!(absf(big) <= bitcast<f32>(0x7f7fffffu))) { return add(p, c); }  // an infinite or NaN input
    // Scale down by 2^64. A c that would underflow only breaks ties now, so any tiny value of its sign does.
    let cs = select(mul(c, bitcast<f32>(0x1f800000u)), select(bitcast<f32>(0x80800000u), bitcast<f32>(0x00800000u), c > 0.0),
                    c != 0.0 && absf(c) < bitcast<f32>(0x20800000u));
    let r = fma_exact(mul(big, bitcast<f32>(0x1f800000u)), small, cs);
    if ((bitcast<u32>(r) & 0x7fffffffu) > 0x7f800000u) { return p; }  // |a*b| >= 2^192: infinite whatever c is
    return mul(r, bitcast<f32>(0x5f800000u));
  }
  if (c == 0.0) { return p; }                              // only the product: rounded once already
  if (absf(c) >= bitcast<f32>(0x1a000000u)) { return c; }  // |c| >= 2^-75 swamps a product below 2^-100
  // Both tiny: scale the smaller factor and c up by 2^64 (exact), compute, scale back.
  let up = mul(small, bitcast<f32>(0x5f800000u));
  if (absf(mul(up, big)) < bitcast<f32>(0x0d800000u)) { return c; }  // |a*b| < 2^-164: below half of c's ulp
  let r = fma_exact(up, big, mul(c, bitcast<f32>(0x5f800000u)));
  // |r| >= 2^-62: the sum is normal (or rounds up to 2^-126 either way) and scaling back is exact.
  if (absf(r) >= bitcast<f32>(0x20800000u)) { return mul(r, bitcast<f32>(0x1f800000u)); }
  return fma_subnormal(a, b, c);
}

// x << s and x >> s, 0 from s = 32 on (WGSL shifts by s % 32).
fn shl(x: u32, s: u32) -> u32 { return select(x << (s & 31u), 0u, s >= 32u); }
fn shr(x: u32, s: u32) -> u32 { return select(x >> (s & 31u), 0u, s >= 32u); }

// A finite nonzero f32's bits as |x| = m · 2^e, m < 2^24 (m in .x, e in .y).
fn unpack_f32(u: u32) -> vec2<i32> {
  let e = (u >> 23u) & 0xffu;
  if (e == 0u) { return vec2<i32>(i32(u & 0x7fffffu), -149); }
  return vec2<i32>(i32((u & 0x7fffffu) | 0x800000u), i32(e) - 150);
}

// a*b + c rounded once to a multiple of 2^-149 (ties to even), in integer arithmetic, for nonzero
// finite a, b, c whose exact sum is below 2^-126 in magnitude (|a*b| < 2^-100; any sum below 2^-119
// would do). The sum in units of 2^-150 is n + f, n an integer, 0 <= f < 1: n fits an i32, so it is
// computed modulo 2^32 from the low words of c (on the 2^-149 grid: no fraction) and of the product,
// whose bits below 2^-150 only say whether f is 0 (sticky). Signs as IEEE's: an exact 0 is +0, a sum
// that rounds to 0 keeps its sign.
fn fma_subnormal(a: f32, b: f32, c: f32) -> f32 {
  let x = bitcast<u32>(a);
  let y = bitcast<u32>(b);
  let z = bitcast<u32>(c);
  let ua = unpack_f32(x);
  let ub = unpack_f32(y);
  let uc = unpack_f32(z);
  // The product's significand, below 2^48, as p1 · 2^24 + p0 (limbs of 24 bits, 12-bit halves multiplied).
  let ma = u32(ua.x);
  let mb = u32(ub.x);
  let a1 = ma >> 12u;
  let a0 = ma & 0xfffu;
  let b1 = mb >> 12u;
  let b0 = mb & 0xfffu;
  let mid = a1 * b0 + a0 * b1;                  // < 2^25
  let t = a0 * b0 + ((mid & 0xfffu) << 12u);    // < 2^25
  let p0 = t & 0xffffffu;
  let p1 = a1 * b1 + (mid >> 12u) + (t >> 24u);  // < 2^24
  // |a*b| / 2^-150 = P · 2^sh: q its integer part modulo 2^32, sticky when a fraction is left.
  let sh = ua.y + ub.y + 150;
  var q = 0u;
  var sticky = false;
  if (sh >= 0) {
    q = shl(p0, u32(sh)) | shl(p1, u32(sh) + 24u);
  } else {
    let r = u32(-sh);
    if (r <= 24u) {
      q = (p0 >> r) | shl(p1, 24u - r);
      sticky = (p0 & ((1u << r) - 1u)) != 0u;
    } else {
      q = shr(p1, r - 24u);
      sticky = p0 != 0u || shl(q, r - 24u) != p1;
    }
  }
  let cq = shl(u32(uc.x), u32(uc.y + 150));
  // n = floor(sum / 2^-150) modulo 2^32: a negative product with a fraction takes one more off.
  let n = select(cq, 0u - cq, (z >> 31u) != 0u) + select(q, 0u - q - u32(sticky), ((x ^ y) >> 31u) != 0u);
  let neg = (n >> 31u) != 0u;
  let m = select(n, 0u - n - u32(sticky), neg);  // |sum| / 2^-150 = m + (a fraction when sticky)
  var h = m >> 1u;
  if ((m & 1u) != 0u && (sticky || (h & 1u) != 0u)) { h = h + 1u; }
  return bitcast<f32>(select(0u, 0x80000000u, neg) | h);
}

fn div_residual(a: f32, q: f32, b: f32) -> f32 {
  let pe = two_prod(q, b);
  return sub(sub(a, pe.x), pe.y);  // a - fl(q*b) is exact: q*b is within a few ulps of a
}

// a / b correctly rounded: WGSL allows 2.5 ulp for '/'. The quotient is moved an ulp at a time
// while that shrinks the exact residual a - q*b. Exact residuals need 2^-100 <= |a| < 2^100 and a
// normal q and b; outside that (never for linear's sums or nearswap's 1/diff) the device's '/' stands.
fn div_rn(a: f32, b: f32) -> f32 { return div_refine(a, b, k(a / b)); }

// q, an approximation of a / b within a few ulps, made the correctly rounded quotient.
fn div_refine(a: f32, b: f32, q0: f32) -> f32 {
  var q = q0;
  let normal = bitcast<f32>(0x00800000u);
  let most = bitcast<f32>(0x7f7fffffu);
  let ok = absf(a) >= bitcast<f32>(0x0d800000u) && absf(a) < bitcast<f32>(0x71800000u)
    && absf(b) >= normal && absf(b) <= most && absf(q) >= normal && absf(q) <= most;
  if (!ok) { return q; }
  var r = div_residual(a, q, b);
  for (var i = 0; i < 3; i++) {
    if (r == 0.0) { break; }
    let bits = bitcast<u32>(q);
    // The true quotient is q + r/b: step toward it.
    let up = (r > 0.0) == (b > 0.0);
    let qn = bitcast<f32>(select(bits - 1u, bits + 1u, up == (q > 0.0)));
    let rn = div_residual(a, qn, b);
    if (absf(rn) >= absf(r)) { break; }
    q = qn;
    r = rn;
  }
  return q;
}

// a / b rounded to nearest even, exactly as IEEE 754 binary32 division (JavaScript's
// Math.fround(a / b)), in integer arithmetic: no float operation, so nothing for WGSL's 2.5-ulp '/'
// or a flush of subnormals to touch. Every input: ±0, subnormals, ±inf, NaN (the result 0x7fc00000).
fn div_ieee(a: f32, b: f32) -> f32 {
  let x = bitcast<u32>(a);
  let y = bitcast<u32>(b);
  let sign = (x ^ y) & 0x80000000u;
  let ax = x & 0x7fffffffu;
  let ay = y & 0x7fffffffu;
  if (ax > 0x7f800000u || ay > 0x7f800000u || (ax == ay && (ax == 0u || ax == 0x7f800000u))) { return bitcast<f32>(0x7fc00000u ^ P.zero); }  // (a NaN constant will not compile)
  if (ax == 0x7f800000u || ay == 0u) { return bitcast<f32>(sign | 0x7f800000u); }
  if (ax == 0u || ay == 0x7f800000u) { return bitcast<f32>(sign); }
  // Significands in [2^23, 2^24) with their exponents (subnormals normalized).
  var ea = i32(ax >> 23u);
  var ma = ax & 0x7fffffu;
  if (ea == 0) { let s = countLeadingZeros(ma) - 8u; ma = ma << s; ea = 1 - i32(s); } else { ma = ma | 0x800000u; }
  var eb = i32(ay >> 23u);
  var mb = ay & 0x7fffffu;
  if (eb == 0) { let s = countLeadingZeros(mb) - 8u; mb = mb << s; eb = 1 - i32(s); } else { mb = mb | 0x800000u; }
  // The quotient's biased exponent, with ma / mb in [1, 2).
  var e = ea - eb + 127;
  if (ma < mb) { ma = ma << 1u; e = e - 1; }
  // Long division 8 bits at a time (the remainder < mb < 2^25, so r << 8 fits a u32):
  // q = floor(ma / mb · 2^24) in [2^24, 2^25), sticky when anything is left over.
  var q = 1u;
  var r = ma - mb;
  for (var i = 0; i < 3; i++) {
    r = r << 8u;
    let d = r / mb;
    q = (q << 8u) | d;
    r = r - d * mb;
  }
  let sticky = r != 0u;
  if (e >= 255) { return bitcast<f32>(sign | 0x7f800000u); }
  if (e >= 1) {
    // q >> 1 is the 24-bit significand, q & 1 the guard bit; a carry moves into the exponent
    // (and to infinity past the largest finite).
    var bits = (u32(e - 1) << 23u) + (q >> 1u);
    if ((q & 1u) == 1u && (sticky || (bits & 1u) == 1u)) { bits = bits + 1u; }
    return bitcast<f32>(sign | bits);
  }
  // A subnormal result, in units of 2^-149: q · 2^(e - 2).
  let shift = u32(2 - e);
  if (shift > 25u) { return bitcast<f32>(sign); }  // below half the smallest subnormal
  var m = q >> shift;
  let rem = q & ((1u << shift) - 1u);
  let halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (sticky || (m & 1u) == 1u))) { m = m + 1u; }
  return bitcast<f32>(sign | m);
}

fn f16_to_f32_bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let ex = (h >> 10u) & 0x1fu;
  let man = h & 0x3ffu;
  if (ex == 0x1fu) { return sign | 0x7f800000u | (man << 13u); }
  if (ex != 0u) { return sign | ((ex + 112u) << 23u) | (man << 13u); }
  if (man == 0u) { return sign; }
  let top = 31u - countLeadingZeros(man);  // 0..9
  return sign | ((top + 103u) << 23u) | ((man << (23u - top)) & 0x7fffffu);
}

// torch's c10::BFloat16: round to nearest even, every NaN 0x7fc0.
fn f32_to_bf16(x: u32) -> u32 {
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu) != 0u) { return 0x7fc0u; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}

// IEEE binary16, round to nearest even, subnormals kept (safetensors/convert.ts f32BitsToF16).
fn f32_to_f16(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let ex = i32((x >> 23u) & 0xffu);
  var man = x & 0x7fffffu;
  if (ex == 0xff) { return sign | select(0x7c00u, 0x7e00u, man != 0u); }
  let e = ex - 112;
  if (e >= 0x1f) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    man = man | 0x800000u;
    let shift = u32(14 - e);
    var half = man >> shift;
    let rem = man & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (half & 1u) == 1u)) { half = half + 1u; }
    return sign | half;
  }
  var half = (u32(e) << 10u) | (man >> 13u);
  let rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u) == 1u)) { half = half + 1u; }
  return sign | half;
}
`;

/**
 * Element e of input m as an f32. `mixed`: the inputs are f32 (where bit m of `P.wide` is set) and
 * `dtype` (a 16-bit one), each segment as wide as an f32 input's.
 */
function loadFn(dtype: FloatDtype, mixed = false): string {
  if (dtype === 'F32') return 'fn ld(m: u32, e: u32) -> f32 { return bitcast<f32>(src[m * P.seg + e]); }';
  const wide = mixed ? 'if (((P.wide >> m) & 1u) == 1u) { return bitcast<f32>(src[m * P.seg + e]); }' : '';
  const word = 'let w = src[m * P.seg + (e >> 1u)]; let odd = (e & 1u) == 1u;';
  if (dtype === 'BF16') return `fn ld(m: u32, e: u32) -> f32 { ${wide} ${word} return bitcast<f32>(select(w << 16u, w & 0xffff0000u, odd)); }`;
  return `fn ld(m: u32, e: u32) -> f32 { ${wide} ${word} return bitcast<f32>(f16_to_f32_bits(select(w & 0xffffu, w >> 16u, odd))); }`;
}

function storeFn(dtype: FloatDtype): string {
  if (dtype === 'F32') return 'fn st(p: u32, v0: f32, v1: f32) { dst[2u * p] = bitcast<u32>(v0); dst[2u * p + 1u] = bitcast<u32>(v1); }';
  const enc = dtype === 'BF16' ? 'f32_to_bf16' : 'f32_to_f16';
  return `fn st(p: u32, v0: f32, v1: f32) { dst[p] = ${enc}(bitcast<u32>(v0)) | (${enc}(bitcast<u32>(v1)) << 16u); }`;
}

function opFn(op: ElementwiseOp): string {
  switch (op) {
    case 'linear':
      return /* wgsl */ `
fn op(e: u32) -> f32 {
  var acc = 0.0;
  for (var m = 0u; m < P.count; m++) { acc = fma_rn(ld(m, e), P.w[m >> 2u][m & 3u], acc); }
  if ((P.flags & 1u) != 0u) { acc = div_rn(acc, P.p0); }
  return acc;
}`;
    case 'nearswap':
      return /* wgsl */ `
fn op(e: u32) -> f32 {
  let a = ld(0u, e);
  let b = ld(1u, e);
  let lo = bitcast<f32>(${f32Bits(NEARSWAP_MIN_DIFF)}u);
  let d = absf(sub(a, b));
  let diff = select(lo, d, d > lo);
  let x = mul(div_rn(1.0, diff), P.p0);
  let y = select(0.0, x, x > 0.0);   // Math.max(x, 0): +0 for -0
  let w = select(1.0, y, y < 1.0);   // Math.min(y, 1)
  return add(mul(w, b), mul(sub(1.0, w), a));
}`;
    case 'blend2':
      return /* wgsl */ `
fn op(e: u32) -> f32 { return add(mul(P.p0, ld(0u, e)), mul(P.p1, ld(1u, e))); }`;
    // The two below: reference.ts unitSumF32 and unitTangentF32, step for step.
    case 'unitSum':
      // flags & 1: add from −0 (signedZeros).
      return /* wgsl */ `
fn wv(i: u32) -> f32 { return P.w[i >> 2u][i & 3u]; }
fn op(e: u32) -> f32 {
  var sum = bitcast<f32>(select(0u, 0x80000000u, (P.flags & 1u) != 0u) ^ P.zero);
  for (var j = 0u; j < P.count; j++) { sum = add(sum, mul(div_ieee(ld(j, e), wv(${UNIT_DIVISORS}u + j)), wv(${UNIT_WEIGHTS}u + j))); }
  return sum;
}`;
    case 'unitTangent':
      // Inputs: the values, then the mean, then the base when flags & 1; p0 the mean's norm, p1 the average norm.
      return /* wgsl */ `
fn wv(i: u32) -> f32 { return P.w[i >> 2u][i & 3u]; }
fn op(e: u32) -> f32 {
  let direction = div_ieee(ld(P.count, e), P.p0);
  var tangent = k(0.0);
  for (var j = 0u; j < P.count; j++) {
    let unit = div_ieee(ld(j, e), wv(${UNIT_DIVISORS}u + j));
    tangent = add(tangent, mul(sub(unit, mul(wv(${UNIT_DOTS}u + j), direction)), wv(${UNIT_WEIGHTS}u + j)));
  }
  let r = mul(add(mul(direction, wv(${UNIT_EXP}u)), mul(tangent, wv(${UNIT_EXP + 1}u))), P.p1);
  if ((P.flags & 1u) != 0u) { return add(r, ld(P.count + 1u, e)); }
  return r;
}`;
  }
}

/**
 * The compute shader for one (op, input dtype, output dtype), `workgroupSize` invocations a group;
 * `mixed`: some inputs are f32 and the others `input` (see loadFn).
 */
export function elementwiseShader(op: ElementwiseOp, input: FloatDtype, output: FloatDtype, workgroupSize: number, mixed = false): string {
  return `${HEADER}
${NUMERICS_WGSL}
${loadFn(input, mixed)}
${storeFn(output)}
${opFn(op)}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let p = (wid.y * groups.x + wid.x) * ${workgroupSize}u + lid;
  let e = 2u * p;
  if (e >= P.n) { return; }
  st(p, op(e), op(e + 1u));
}
`;
}

/** Size of the uniform block `TaskParams` below, in bytes. */
export const TASK_PARAMS_BYTES = 48 + 9 * (MAX_TASK_MODELS * 4);

/**
 * How the task kernel learns model j's mask: `kind` 0 keeps all, 1 draws DARE's hash, 2 compares
 * |δ| with magnitude thresholds, 3 does so with the ties' bytes in the segment `key` names (torch's
 * order among ties), 4 + s reads mask segment s.
 */
export const TASK_MASK_ALL = 0;
export const TASK_MASK_RANDOM = 1;
export const TASK_MASK_MAGNITUDE = 2;
export const TASK_MASK_MAGNITUDE_TIES = 3;
export const TASK_MASK_SEGMENT = 4;

const TASK_HEADER = /* wgsl */ `
struct Params {
  n: u32,         // elements in this window
  seg: u32,       // u32 words from one input (or mask) segment to the next in src
  count: u32,     // models, after the base
  zero: u32,      // always 0: the key of the barrier k()
  start_lo: u32,  // index in the tensor of the window's first element, low and high words
  start_hi: u32,
  flags: u32,     // 1 consensus, 2 normalize, 4 lambda != 1, 8 bf16 steps
  divisor: f32,
  lambda: f32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
  w: array<vec4<f32>, ${MAX_TASK_MODELS / 4}>,
  s: array<vec4<f32>, ${MAX_TASK_MODELS / 4}>,
  key: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,
  thr: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,
  kind: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,
  kbits: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,  // magnitude: |δ| bits kept above
  kcut: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,   // ... and at them before this window index
  sbits: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,  // breadcrumbs' outliers: skipped above
  scut: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,   // ... and at them before this window index
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
`;

/** The step rounding and magnitude bits shared by the task and count kernels (flags & 8: bf16 steps). */
const STEP_WGSL = /* wgsl */ `
// A step rounded as mergekit's compute dtype rounds it: bf16 (integer RNE, NaN kept) or f32 as is.
fn rnd(x: f32) -> f32 {
  if ((P.flags & 8u) == 0u) { return x; }
  return bitcast<f32>(f32_to_bf16(bitcast<u32>(x)) << 16u);
}

// |x|'s bits, every NaN as 0x7fc00000 (compute/types.ts absBits).
fn abs_bits(x: f32) -> u32 {
  let a = bitcast<u32>(x) & 0x7fffffffu;
  return select(a, 0x7fc00000u, a > 0x7f800000u);
}
`;

const TASK_OP = /* wgsl */ `

// methods/random-mask.ts uniformAt(key, index) < density, as integers: z < ceil(density · 2^32).
fn drawn(j: u32, e: u32) -> bool {
  let lo = P.start_lo + e;
  let hi = P.start_hi + select(0u, 1u, lo < e);
  var z = P.key[j >> 2u][j & 3u] ^ (lo * 0x9e3779b9u) ^ hi;
  z = (z ^ (z >> 16u)) * 0x85ebca6bu;
  z = (z ^ (z >> 13u)) * 0xc2b2ae35u;
  z = z ^ (z >> 16u);
  return z < P.thr[j >> 2u][j & 3u];
}

// A magnitude cut (compute/types.ts MagnitudeCut), its tensor index made a window index.
fn passes(bits: u32, cut_bits: u32, cut: u32, e: u32) -> bool {
  return bits > cut_bits || (bits == cut_bits && e < cut);
}

fn kept(j: u32, e: u32, delta: f32) -> bool {
  let kind = P.kind[j >> 2u][j & 3u];
  if (kind == ${TASK_MASK_ALL}u) { return true; }
  if (kind == ${TASK_MASK_RANDOM}u) { return drawn(j, e); }
  if (kind == ${TASK_MASK_MAGNITUDE}u) {
    let bits = abs_bits(delta);
    return passes(bits, P.kbits[j >> 2u][j & 3u], P.kcut[j >> 2u][j & 3u], e)
      && !passes(bits, P.sbits[j >> 2u][j & 3u], P.scut[j >> 2u][j & 3u], e);
  }
  if (kind == ${TASK_MASK_MAGNITUDE_TIES}u) {
    let bits = abs_bits(delta);
    return (bits > P.kbits[j >> 2u][j & 3u] && bits < P.sbits[j >> 2u][j & 3u]) || segment_byte(P.key[j >> 2u][j & 3u], e);
  }
  return segment_byte(kind - ${TASK_MASK_SEGMENT}u, e);
}

// Whether the byte of element e in mask segment s is not 0.
fn segment_byte(s: u32, e: u32) -> bool {
  let word = src[(P.count + 1u + s) * P.seg + (e >> 2u)];
  return ((word >> ((e & 3u) * 8u)) & 0xffu) != 0u;
}

fn op(e: u32) -> f32 {
  let b = ld(0u, e);
  var d: array<f32, ${MAX_TASK_MODELS}>;
  for (var j = 0u; j < P.count; j++) {
    var delta = rnd(sub(ld(j + 1u, e), b));
    if (!kept(j, e, delta)) { delta = k(0.0); }
    let s = P.s[j >> 2u][j & 3u];
    if (s != 1.0) { delta = rnd(mul(delta, s)); }
    d[j] = rnd(mul(delta, P.w[j >> 2u][j & 3u]));
  }
  var mixed = k(0.0);
  var divisor = P.divisor;
  if ((P.flags & 1u) != 0u) {
    var vote = k(0.0);
    for (var j = 0u; j < P.count; j++) { vote = add(vote, d[j]); }
    let up = vote >= 0.0;
    divisor = k(0.0);
    for (var j = 0u; j < P.count; j++) {
      let agrees = select(d[j] < 0.0, d[j] > 0.0, up);
      mixed = add(mixed, select(0.0, d[j], agrees));
      divisor = add(divisor, select(0.0, P.w[j >> 2u][j & 3u], agrees));
    }
    divisor = rnd(divisor);
    if (divisor == 0.0) { divisor = 1.0; }
  } else {
    for (var j = 0u; j < P.count; j++) { mixed = add(mixed, d[j]); }
  }
  mixed = rnd(mixed);
  if ((P.flags & 2u) != 0u) { mixed = rnd(div_rn(mixed, divisor)); }
  if ((P.flags & 4u) != 0u) { mixed = rnd(mul(mixed, P.lambda)); }
  return rnd(add(b, mixed));
}`;

/** The task-vector kernel (ComputeBackend.taskArithmetic) for one (input dtype, output dtype). */
export function taskShader(input: FloatDtype, output: FloatDtype, workgroupSize: number): string {
  return `${TASK_HEADER}
${NUMERICS_WGSL}
${loadFn(input)}
${storeFn(output)}
${STEP_WGSL}
${TASK_OP}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let p = (wid.y * groups.x + wid.x) * ${workgroupSize}u + lid;
  let e = 2u * p;
  if (e >= P.n) { return; }
  st(p, op(e), op(e + 1u));
}
`;
}

/** Size of the uniform block of the count kernel (`Params` in COUNT_HEADER), in bytes. */
export const COUNT_PARAMS_BYTES = 32 + MAX_TASK_MODELS * 4;
/** Count kernel flags: bf16 steps (as the task kernel's), and find mode. */
export const COUNT_BF16_STEP = 8;
export const COUNT_FIND = 16;
/** `Params.pick` for a first histogram pass (all high halves counted). */
export const COUNT_FIRST_PASS = 0xffffffff;

const COUNT_HEADER = /* wgsl */ `
struct Params {
  n: u32,      // elements in this window
  seg: u32,    // u32 words from one input to the next in src
  count: u32,  // selections, after the base
  zero: u32,   // always 0: the key of the barrier k()
  flags: u32,  // ${COUNT_BF16_STEP} bf16 steps, ${COUNT_FIND} find mode
  pad0: u32,
  pad1: u32,
  pad2: u32,
  // Per selection. Histogram: ${COUNT_FIRST_PASS}u counts every |δ|'s high 16 bits (first pass), else
  // the high 16 bits whose low 16 bits are counted. Find: the |δ| bits whose elements are counted.
  pick: array<vec4<u32>, ${MAX_TASK_MODELS / 4}>,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
`;

const COUNT_OP = /* wgsl */ `
const NONE = 0xffffffffu;

// Which counter element e of selection j adds to, or NONE.
fn counter(j: u32, e: u32) -> u32 {
  let bits = abs_bits(rnd(sub(ld(j + 1u, e), ld(0u, e))));
  let pick = P.pick[j >> 2u][j & 3u];
  if ((P.flags & ${COUNT_FIND}u) != 0u) { return select(NONE, j, bits == pick); }
  if (pick == ${COUNT_FIRST_PASS}u) { return j * 65536u + (bits >> 16u); }
  return select(NONE, j * 65536u + (bits & 0xffffu), (bits >> 16u) == pick);
}`;

/**
 * The magnitude counts (ComputeBackend.deltaHistogram, and deltaFind's per-window tallies) for one
 * input dtype: each element of each selection adds 1 to its counter in `hist` with an atomic add
 * (65,536 u32 bins per selection; in find mode one counter per selection). Integer counts are the
 * same in any order, so the bits do not depend on the schedule. The bins are global: 256 KiB a
 * selection is far more than a workgroup's 16 KiB. Two neighbouring elements that meet in one
 * counter add 2 at once.
 */
export function countShader(input: FloatDtype, workgroupSize: number): string {
  return `${COUNT_HEADER}
${NUMERICS_WGSL}
${loadFn(input)}
${STEP_WGSL}
${COUNT_OP}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let p = (wid.y * groups.x + wid.x) * ${workgroupSize}u + lid;
  let e = 2u * p;
  if (e >= P.n) { return; }
  let second = e + 1u < P.n;
  for (var j = 0u; j < P.count; j++) {
    let c0 = counter(j, e);
    let c1 = select(NONE, counter(j, e + 1u), second);
    if (c0 == c1) {
      if (c0 != NONE) { atomicAdd(&hist[c0], 2u); }
    } else {
      if (c0 != NONE) { atomicAdd(&hist[c0], 1u); }
      if (c1 != NONE) { atomicAdd(&hist[c1], 1u); }
    }
  }
}
`;
}

/** Size of the uniform block of the row-rank kernels (`Params` in RANK_HEADER), in bytes. */
export const RANK_PARAMS_BYTES = 64;
/** Bins of one digit of the row sort: 11 bits of |δ|'s 31 a pass (bits 0–10, 11–21, 22–30). */
export const RANK_BINS = 2048;

const RANK_HEADER = /* wgsl */ `
struct Params {
  n: u32,         // elements in this window: whole rows
  seg: u32,       // u32 words from one input to the next in src (the base, then one model)
  len: u32,       // elements per row
  zero: u32,      // always 0: the key of the barrier k()
  start_lo: u32,  // index in the tensor of the window's first element, low and high words
  start_hi: u32,
  flags: u32,     // 8 bf16 steps (as the task kernel's)
  key: u32,       // the model's hash key
  low: f32,       // f(density - epsilon)
  span: f32,      // f(2 epsilon)
  last: f32,      // n - 1 of a row, as an f32 (exact: rows are at most 2^22)
  rows: u32,      // rows in this window
  stride: u32,    // u32 words of each scratch region in dst
  pad0: u32,
  pad1: u32,
  pad2: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
`;

/**
 * DELLA's per-row ranks (ComputeBackend.rowRankMasks) for one input dtype and model, over one
 * window of whole rows, as five entry points dispatched in order:
 *
 * `keys`, a workgroup per row: the row's keys, |δ|'s bits (δ rounded to the step as the task kernel
 * rounds it, every NaN 0x7fc00000), to dst region 0 in index order.
 *
 * `digit0`, `digit1`, `digit2`, a workgroup per row each: one pass of a stable LSD radix sort of the
 * row's positions by key, 11 bits a pass, a digit that every key of the row shares skipped (the OR
 * of the keys xor their AND, as the WASM kernel does). A pass counts its digit into a 2,048-bin
 * workgroup histogram (integer atomics: the same counts in any order), makes the counts exclusive
 * offsets, then scatters the positions a tile of WG (the workgroup's size) at a time, in order: an
 * element's place is its bin's offset plus the elements of the tile before it with the same digit,
 * so equal digits keep their order and the sorted position of element i is exactly its rank, the
 * keys below its own plus the equal keys at smaller positions. Positions ping-pong between regions 1
 * and 2; the last pass writes each element's rank, in index order, to region 2 (a row whose keys are
 * all alike gets its positions). Ranks are integers: any exact method gives the reference's bytes.
 * One dispatch a pass, loops unrolled where they can be: llvmpipe ends any loop after 65,535
 * iterations counted over a whole invocation, so an invocation stays under that for rows of
 * MAX_DELLA_ROW with workgroups of 128 (the tile loop n / WG, the others a quarter of that).
 *
 * `keep`, one invocation per 4 elements (a packed word of the byte output; rows need not align with
 * it): probability = f(low + f(f(rank / (n − 1))·span)) with div_ieee (correctly rounded) and
 * barrier-separated f32 steps, then uniformAt(key, start + i) < probability decided exactly in
 * integers (the hash's z < probability · 2^32, from the probability's bits). Output: region 0's
 * first words, one byte per element.
 */
function rankOp(workgroupSize: number): string {
  // The tile's elements before this one with the same digit: WG compares, no loop.
  const ahead = Array.from({ length: workgroupSize }, (_, l) => `    ahead += select(0u, 1u, ${l}u < lid && tile[${l}u] == digit);`).join('\n');
  const unrolled = (body: (i: string) => string) => /* wgsl */ `
  for (var i0 = lid; i0 < n; i0 += 4u * WG) {
    ${body('i0')}
    if (i0 + WG < n) { ${body('i0 + WG')} }
    if (i0 + 2u * WG < n) { ${body('i0 + 2u * WG')} }
    if (i0 + 3u * WG < n) { ${body('i0 + 3u * WG')} }
  }`;
  return /* wgsl */ `
const BINS = ${RANK_BINS}u;
var<workgroup> hist: array<atomic<u32>, ${RANK_BINS}>;
var<workgroup> tile: array<u32, WG>;
var<workgroup> part: array<u32, WG>;
var<workgroup> any_bits: atomic<u32>;
var<workgroup> all_bits: atomic<u32>;
var<workgroup> differ: u32;

@compute @workgroup_size(WG)
fn keys(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * groups.x + wid.x;
  if (row >= P.rows) { return; }
  let n = P.len;
  let row0 = row * n;
  ${unrolled((i) => `dst[row0 + ${i}] = abs_bits(rnd(sub(ld(1u, row0 + ${i}), ld(0u, row0 + ${i}))));`)}
}

// The bits in which the row's keys differ, alike in every invocation of the workgroup.
fn row_diff(row0: u32, n: u32, lid: u32) -> u32 {
  if (lid == 0u) { atomicStore(&any_bits, 0u); atomicStore(&all_bits, 0xffffffffu); }
  workgroupBarrier();
  var o = 0u;
  var a = 0xffffffffu;
  ${unrolled((i) => `{ let key = dst[row0 + ${i}]; o = o | key; a = a & key; }`)}
  atomicOr(&any_bits, o);
  atomicAnd(&all_bits, a);
  workgroupBarrier();
  if (lid == 0u) { differ = atomicLoad(&any_bits) ^ atomicLoad(&all_bits); }
  return workgroupUniformLoad(&differ);
}

// The element of the row at sorted position i before pass t: itself on the first pass.
fn at(t: u32, from_r: u32, row0: u32, i: u32) -> u32 {
  if (t == 0u) { return i; }
  return dst[from_r + row0 + i];
}

fn sort_pass(d: u32, row: u32, lid: u32) {
  let n = P.len;
  let row0 = row * n;
  let R1 = P.stride;
  let R2 = 2u * P.stride;
  let diff = row_diff(row0, n, lid);
  let shift = 11u * d;
  // The passes this row takes, and which of them this one is.
  var passes = 0u;
  var t = 0u;
  for (var q = 0u; q < 3u; q++) {
    if (((diff >> (11u * q)) & 0x7ffu) != 0u) {
      passes++;
      if (q < d) { t++; }
    }
  }
  if (passes == 0u) {
    // Every key alike: the ranks are the positions (written once, by the last digit's dispatch).
    if (d == 2u) { ${unrolled((i) => `dst[R2 + row0 + ${i}] = ${i};`)} }
    return;
  }
  if (((diff >> shift) & 0x7ffu) == 0u) { return; }
  let last = t + 1u == passes;
  // Pass t writes region 2 when passes - 1 - t is even (so the last one does), else region 1.
  let to_r = select(R1, R2, ((passes - 1u - t) & 1u) == 0u);
  let from_r = select(R2, R1, to_r == R2);
  for (var b = lid; b < BINS; b += WG) { atomicStore(&hist[b], 0u); }
  workgroupBarrier();
  ${unrolled((i) => `atomicAdd(&hist[(dst[row0 + at(t, from_r, row0, ${i})] >> shift) & 0x7ffu], 1u);`)}
  workgroupBarrier();
  // Exclusive offsets: each invocation owns BINS / WG neighbouring bins.
  let per = BINS / WG;
  var sum = 0u;
  for (var b = 0u; b < per; b++) { sum += atomicLoad(&hist[lid * per + b]); }
  part[lid] = sum;
  workgroupBarrier();
  var before = 0u;
  for (var l = 0u; l < lid; l++) { before += part[l]; }
  for (var b = 0u; b < per; b++) {
    let c = atomicLoad(&hist[lid * per + b]);
    atomicStore(&hist[lid * per + b], before);
    before += c;
  }
  workgroupBarrier();
  // The scatter, a tile at a time in sorted order: stable.
  for (var t0 = 0u; t0 < n; t0 += WG) {
    let i = t0 + lid;
    var e = 0u;
    var digit = 0xffffffffu;
    if (i < n) {
      e = at(t, from_r, row0, i);
      digit = (dst[row0 + e] >> shift) & 0x7ffu;
    }
    tile[lid] = digit;
    workgroupBarrier();
    var ahead = 0u;
${ahead}
    var place = 0u;
    if (i < n) { place = atomicLoad(&hist[digit]) + ahead; }
    workgroupBarrier();
    if (i < n) {
      atomicAdd(&hist[digit], 1u);
      if (last) { dst[R2 + row0 + e] = place; } else { dst[to_r + row0 + place] = e; }
    }
  }
}

${[0, 1, 2]
  .map(
    (d) => `@compute @workgroup_size(WG)
fn digit${d}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * groups.x + wid.x;
  if (row >= P.rows) { return; }
  sort_pass(${d}u, row, lid);
}`,
  )
  .join('\n')}
`;
}

const RANK_KEEP = /* wgsl */ `
// uniformAt(P.key, start + e) < p exactly: z / 2^32 < p, i.e. z < p · 2^32, from p's bits.
fn below(e: u32, p: f32) -> bool {
  let lo = P.start_lo + e;
  let hi = P.start_hi + select(0u, 1u, lo < e);
  var z = P.key ^ (lo * 0x9e3779b9u) ^ hi;
  z = (z ^ (z >> 16u)) * 0x85ebca6bu;
  z = (z ^ (z >> 13u)) * 0xc2b2ae35u;
  z = z ^ (z >> 16u);
  let bits = bitcast<u32>(p);
  if (bits > 0x7f800000u || (bits & 0x7fffffffu) == 0u || bits >= 0x80000000u) { return false; }  // NaN, ±0, negative
  if (bits >= 0x3f800000u) { return true; }  // p >= 1 (an infinity too)
  // p = m · 2^(x - 150) (x = 1, m without the hidden bit, for a subnormal): p · 2^32 = m · 2^(x - 118).
  let x = bits >> 23u;
  let m = select(bits & 0x7fffffu, (bits & 0x7fffffu) | 0x800000u, x != 0u);
  let ex = i32(max(x, 1u)) - 118;
  if (ex >= 0) { return z < (m << u32(ex)); }   // x <= 126: m << 8 at most, below 2^32
  let s = u32(-ex);
  // z < m / 2^s  <=>  z < ceil(m / 2^s); m < 2^24, so s >= 25 leaves ceil = 1.
  if (s >= 25u) { return z == 0u; }
  return z < ((m + (1u << s) - 1u) >> s);
}

@compute @workgroup_size(WG)
fn keep(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.y * groups.x + wid.x) * WG + lid;
  let e0 = 4u * w;
  if (e0 >= P.n) { return; }
  var word = 0u;
  for (var b = 0u; b < 4u; b++) {
    let e = e0 + b;
    if (e < P.n) {
      let rank = dst[2u * P.stride + e];
      var norm = k(0.0);
      if (P.len > 1u) { norm = div_ieee(f32(rank), P.last); }
      let p = add(P.low, mul(norm, P.span));
      if (below(e, p)) { word = word | (1u << (8u * b)); }
    }
  }
  dst[w] = word;
}`;

/** The row-rank kernels (ComputeBackend.rowRankMasks) for one input dtype: entry points `keys`, `digit0`–`digit2` and `keep`, dispatched in that order. */
export function rankShader(input: FloatDtype, workgroupSize: number): string {
  return `${RANK_HEADER}
const WG = ${workgroupSize}u;
${NUMERICS_WGSL}
${loadFn(input)}
${STEP_WGSL}
${rankOp(workgroupSize)}
${RANK_KEEP}
`;
}
