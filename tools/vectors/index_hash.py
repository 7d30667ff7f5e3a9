"""The integer hash of (index, seed) the vector generators build their values from; the tests that
read their fixtures compute the same in TypeScript (Math.imul), so they rebuild the values bit for bit."""


def index_hash(i, seed):
    h = (i * 2654435761 + seed * 40503) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 2246822519) & 0xFFFFFFFF
    return h ^ (h >> 13)
