import { kernelsOnOwnMemory } from '../compute/wasm-backend';

// XXH3-128 with seed 0 and the default secret, as xxHash's doc/xxhash_spec.md defines it. Inputs over
// 240 bytes (every real shard) are accumulated by the WebAssembly kernel `xxh3` (kernels.wat) a block
// at a time; the short-input cases and the final merges are scalar, on BigInt.

const M64 = (1n << 64n) - 1n;
const PRIME32_1 = 0x9e3779b1n;
const PRIME32_2 = 0x85ebca77n;
const PRIME32_3 = 0xc2b2ae3dn;
const PRIME64_1 = 0x9e3779b185ebca87n;
const PRIME64_2 = 0xc2b2ae3d27d4eb4fn;
const PRIME64_3 = 0x165667b19e3779f9n;
const PRIME64_4 = 0x85ebca77c2b2ae63n;
const PRIME64_5 = 0x27d4eb2f165667c5n;
const PRIME_MX1 = 0x165667919e3779f9n;
const PRIME_MX2 = 0x9fb21c651e98df25n;

const SECRET = Uint8Array.from(
  Buffer.from(
    'b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671fcb79e64eccc0e578825ad07dccff7221' +
      'b8084674f743248ee03590e6813a264c3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8' +
      'a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364eac5ac8334d3ebc3c581a0fffa1363eb' +
      '170ddd51b7f0da49d316552629d4689e2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e',
    'hex',
  ),
);
const SECRET_BYTES = 192;
/** Inputs up to this long have hashes of their own; longer ones are accumulated in stripes. */
const MID_MAX = 240;
const STRIPE = 64;

const u64 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0, true);
const u32 = (b: Uint8Array, at: number) => BigInt(new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0, true));
const secret64 = (at: number) => u64(SECRET, at);
const secret32 = (at: number) => u32(SECRET, at);
const mul = (a: bigint, b: bigint) => (a * b) & M64;
/** The low and high halves of a 64 × 64 → 128-bit product, xored. */
const fold = (a: bigint, b: bigint) => {
  const p = a * b;
  return (p & M64) ^ (p >> 64n);
};
const bswap64 = (x: bigint) => {
  let r = 0n;
  for (let i = 0n; i < 64n; i += 8n) r = (r << 8n) | ((x >> i) & 0xffn);
  return r;
};
const bswap32 = (x: bigint) => ((x & 0xffn) << 24n) | ((x & 0xff00n) << 8n) | ((x >> 8n) & 0xff00n) | (x >> 24n);
const rotl32 = (x: bigint, r: bigint) => ((x << r) | (x >> (32n - r))) & 0xffffffffn;

function avalanche(x: bigint): bigint {
  x ^= x >> 37n;
  x = mul(x, PRIME_MX1);
  return x ^ (x >> 32n);
}

function avalancheXxh64(x: bigint): bigint {
  x ^= x >> 33n;
  x = mul(x, PRIME64_2);
  x ^= x >> 29n;
  x = mul(x, PRIME64_3);
  return x ^ (x >> 32n);
}

type Hash128 = { low: bigint; high: bigint };

function hashUpTo16(input: Uint8Array): Hash128 {
  const n = input.length;
  if (n === 0) return { low: avalancheXxh64(secret64(64) ^ secret64(72)), high: avalancheXxh64(secret64(80) ^ secret64(88)) };
  if (n <= 3) {
    const combined = BigInt(input[n - 1]! | (n << 8) | (input[0]! << 16)) | (BigInt(input[n >> 1]!) << 24n);
    return {
      low: avalancheXxh64((secret32(0) ^ secret32(4)) ^ combined),
      high: avalancheXxh64((secret32(8) ^ secret32(12)) ^ rotl32(bswap32(combined), 13n)),
    };
  }
  if (n <= 8) {
    const value = secret64(16) ^ secret64(24) ^ (u32(input, 0) | (u32(input, n - 4) << 32n));
    const product = value * ((PRIME64_1 + (BigInt(n) << 2n)) & M64);
    let low = product & M64;
    const high = ((product >> 64n) + (low << 1n)) & M64;
    low ^= high >> 3n;
    low ^= low >> 35n;
    low = mul(low, PRIME_MX2);
    return { low: low ^ (low >> 28n), high: avalanche(high) };
  }
  const last = u64(input, n - 8);
  const val1 = secret64(32) ^ secret64(40) ^ u64(input, 0) ^ last;
  const val2 = secret64(48) ^ secret64(56) ^ last;
  const product = val1 * PRIME64_1;
  let low = ((product & M64) + (BigInt(n - 1) << 54n)) & M64;
  let high = ((product >> 64n) + ((val2 >> 32n) << 32n) + (val2 & 0xffffffffn) * PRIME32_2) & M64;
  low ^= bswap64(high);
  const product2 = low * PRIME64_2;
  low = product2 & M64;
  high = ((product2 >> 64n) + high * PRIME64_2) & M64;
  return { low: avalanche(low), high: avalanche(high) };
}

function hashUpTo240(input: Uint8Array): Hash128 {
  const n = input.length;
  const acc = [mul(BigInt(n), PRIME64_1), 0n];
  const mixStep = (at: number, key: number) => fold(u64(input, at) ^ secret64(key), u64(input, at + 8) ^ secret64(key + 8));
  const mixTwo = (first: number, second: number, key: number) => {
    acc[0] = (acc[0]! + mixStep(first, key)) & M64;
    acc[1] = (acc[1]! + mixStep(second, key + 16)) & M64;
    acc[0] ^= (u64(input, second) + u64(input, second + 8)) & M64;
    acc[1] ^= (u64(input, first) + u64(input, first + 8)) & M64;
  };
  if (n <= 128) {
    for (let i = ((n - 1) >> 5); i >= 0; i--) mixTwo(i * 16, n - i * 16 - 16, i * 32);
  } else {
    for (let i = 0; i < 4; i++) mixTwo(i * 32, i * 32 + 16, i * 32);
    acc[0] = avalanche(acc[0]!);
    acc[1] = avalanche(acc[1]!);
    for (let i = 4; i < n >> 5; i++) mixTwo(i * 32, i * 32 + 16, (i - 4) * 32 + 3);
    mixTwo(n - 16, n - 32, 103);
  }
  const high = (mul(acc[0]!, PRIME64_1) + mul(acc[1]!, PRIME64_4) + mul(BigInt(n), PRIME64_2)) & M64;
  return { low: avalanche((acc[0]! + acc[1]!) & M64), high: (0n - avalanche(high)) & M64 };
}

function finalMerge(acc: BigUint64Array, init: bigint, key: number): bigint {
  let result = init;
  for (let i = 0; i < 4; i++) result = (result + fold(acc[2 * i]! ^ secret64(key + 16 * i), acc[2 * i + 1]! ^ secret64(key + 16 * i + 8))) & M64;
  return avalanche(result);
}

const ACC_AT = 0;
const SECRET_AT = 64;
const WORK_AT = 256;
/** Bytes copied into the kernel's memory at a time (they stay in cache while hashed). */
const BLOCK = 256 << 10;
const PAGES = Math.ceil((WORK_AT + 2 * STRIPE + BLOCK) / 65536);
const INITIAL_ACC = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];

type StripeKernel = (acc: number, data: number, stripes: number, stripeInBlock: number, secret: number) => number;

/**
 * A streaming XXH3-128: `update` with the bytes in order, `digest` for the hex digest (as xxHash's
 * canonical form prints it, high half first), which starts it over. A stripe is accumulated once
 * more than 64 bytes follow it, so the last 64 bytes, which XXH3 takes as its final stripe, are
 * always still in the kernel's memory.
 */
export class Xxh3Hasher {
  private readonly kernel: StripeKernel;
  private readonly memory: Uint8Array;
  private readonly acc: BigUint64Array;
  private readonly head = new Uint8Array(MID_MAX);
  private length = 0;
  /** Bytes at WORK_AT not yet accumulated: at most two stripes. */
  private pending = 0;
  private stripeInBlock = 0;

  constructor() {
    const { exports, buffer } = kernelsOnOwnMemory(PAGES);
    this.kernel = exports['xxh3'] as StripeKernel;
    this.memory = new Uint8Array(buffer);
    this.acc = new BigUint64Array(buffer, ACC_AT, 8);
    this.memory.set(SECRET, SECRET_AT);
    this.reset();
  }

  update(bytes: Uint8Array): void {
    if (this.length < MID_MAX) this.head.set(bytes.subarray(0, MID_MAX - this.length), this.length);
    this.length += bytes.length;
    for (let at = 0; at < bytes.length; at += BLOCK) {
      const piece = bytes.subarray(at, at + BLOCK);
      this.memory.set(piece, WORK_AT + this.pending);
      const total = this.pending + piece.length;
      const stripes = Math.max(0, Math.floor((total - 1) / STRIPE) - 1);
      if (stripes > 0) {
        this.stripeInBlock = this.kernel(ACC_AT, WORK_AT, stripes, this.stripeInBlock, SECRET_AT);
        this.memory.copyWithin(WORK_AT, WORK_AT + stripes * STRIPE, WORK_AT + total);
      }
      this.pending = total - stripes * STRIPE;
    }
  }

  digest(): string {
    const { low, high } = this.finish();
    this.reset();
    return high.toString(16).padStart(16, '0') + low.toString(16).padStart(16, '0');
  }

  private finish(): Hash128 {
    const n = this.length;
    if (n <= 16) return hashUpTo16(this.head.subarray(0, n));
    if (n <= MID_MAX) return hashUpTo240(this.head.subarray(0, n));
    const last = Math.floor((this.pending - 1) / STRIPE);
    if (last > 0) this.stripeInBlock = this.kernel(ACC_AT, WORK_AT, last, this.stripeInBlock, SECRET_AT);
    // The final stripe, the input's last 64 bytes, is keyed from the secret's byte 121.
    this.kernel(ACC_AT, WORK_AT + this.pending - STRIPE, 1, 0, SECRET_AT + SECRET_BYTES - STRIPE - 7);
    return { low: finalMerge(this.acc, mul(BigInt(n), PRIME64_1), 11), high: finalMerge(this.acc, ~mul(BigInt(n), PRIME64_2) & M64, SECRET_BYTES - 75) };
  }

  private reset(): void {
    this.acc.set(INITIAL_ACC);
    this.length = 0;
    this.pending = 0;
    this.stripeInBlock = 0;
  }
}
