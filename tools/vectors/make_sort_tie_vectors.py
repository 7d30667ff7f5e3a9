"""Which elements tied at a rank boundary torch's CPU sort puts inside a slice, for
test/engine/torch-sort-ties.test.ts: mergekit's `magnitude` keeps torch.argsort(|x|, descending=True)[:k],
`magnitude_outliers` torch.sort(|x|).indices[a:b], both of |x| cast to f32, and sce torch.topk(|x|, k). Values are exact dyadic numbers
from an integer hash (few distinct magnitudes, so many ties), so the test rebuilds them bit for bit.

    python tools/vectors/make_sort_tie_vectors.py   # torch installed (e.g. with mergekit)
"""
import json

import torch

from index_hash import index_hash


def values(length, seed, levels, specials):
    out = []
    for i in range(length):
        h = index_hash(i, seed)
        magnitude = (h % levels) * 2.0**-12
        sign = -1.0 if (h >> 20) & 1 else 1.0
        out.append(sign * magnitude)
    if specials:
        for j, special in enumerate([float("nan"), float("inf"), float("-inf"), -0.0, float("nan")]):
            out[(j * 7919 + seed) % length] = special
    return torch.tensor(out, dtype=torch.float32)


def tied_inside(w, order, start, stop):
    """The indices in order[start:stop] whose value ties with one across either end of the slice."""
    sorted_w = w[order]
    tied = set()
    for boundary in (start, stop):
        if 0 < boundary < len(w):
            a, b = sorted_w[boundary - 1].item(), sorted_w[boundary].item()
            if a == b or (a != a and b != b):
                tied.add(a)
    inside = order[start:stop].tolist()
    same = lambda v, t: v == t or (v != v and t != t)
    return sorted(i for i in inside if any(same(w[i].item(), t) for t in tied)), sorted(tied, key=lambda t: (t != t, t))


cases = []
for length, levels, specials in [(17, 4, False), (40, 3, False), (100, 10, True), (1000, 37, False), (4099, 64, True), (20000, 256, False), (100003, 1024, False), (300007, 500, True)]:
    for seed in range(2):
        w = values(length, seed, levels, specials).abs()
        k = max(1, int(0.37 * length))
        desc = torch.argsort(w, descending=True)
        kept, tied = tied_inside(w, desc, 0, k)
        cases.append({"length": length, "seed": seed, "levels": levels, "specials": specials, "descending": True, "from": 0, "to": k, "tied": tied, "kept": kept})
        start, stop = int(0.4 * length), int(0.4 * length) + int(0.45 * length)
        asc = torch.sort(w, descending=False).indices
        kept, tied = tied_inside(w, asc, start, stop)
        cases.append({"length": length, "seed": seed, "levels": levels, "specials": specials, "descending": False, "from": start, "to": stop, "tied": tied, "kept": kept})

# sce keeps torch.topk(var.abs().view(-1), k, largest=True): std::partial_sort where k * 64 <= n, else
# std::nth_element, over (value, index) pairs.
for length, levels, specials, fraction in [(50, 5, False, 0.3), (1000, 37, True, 0.01), (4099, 64, False, 0.5), (20000, 256, False, 0.015),
                                          (20000, 40, False, 0.2), (100003, 1024, True, 0.3), (300007, 500, False, 0.01), (300007, 77, False, 0.7)]:
    for seed in range(2):
        w = values(length, seed, levels, specials).abs()
        k = max(1, int(fraction * length))
        kept, tied = tied_inside(w, torch.sort(w, descending=True, stable=True).indices, 0, k)
        top = set(torch.topk(w, k, largest=True).indices.tolist())
        kept = sorted(i for i in top if any(w[i].item() == t or (t != t and w[i].item() != w[i].item()) for t in tied))
        cases.append({"length": length, "seed": seed, "levels": levels, "specials": specials, "descending": True, "topk": True, "from": 0, "to": k, "tied": tied, "kept": kept})

with open("test/fixtures/torch-sort-ties.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"), allow_nan=True)
print(len(cases), "cases")
