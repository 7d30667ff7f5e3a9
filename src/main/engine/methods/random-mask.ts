/**
 * DARE/DELLA masks from a counter-based hash instead of torch's RNG: whether element i of a model's
 * task vector is kept depends only on (seed, tensor name, model, i), so any chunking, backend or
 * rerun gives the same mask.
 */
export function maskKey(seed: number, tensorName: string, model: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < tensorName.length; i++) h = Math.imul(h ^ tensorName.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ model, 0x9e3779b1) >>> 0;
}

/** A uniform draw in [0, 1) for element `index` under `key` (a splitmix-style finalizer). */
export function uniformAt(key: number, index: number): number {
  let z = (key ^ Math.imul(index, 0x9e3779b9) ^ Math.floor(index / 4294967296)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  return z / 4294967296;
}

export function keepAt(key: number, index: number, density: number): boolean {
  return uniformAt(key, index) < density;
}
