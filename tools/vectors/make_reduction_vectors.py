"""torch's f32 sum and vector_norm of generated vectors (and of the same rounded to f16 and bf16), and
torch.var across stacked vectors (sce's), for test/engine/torch-reductions.test.ts.
Values are exact dyadic f32 numbers made from an integer hash, so the test rebuilds them bit for bit.

    python tools/vectors/make_reduction_vectors.py   # torch installed (e.g. with mergekit)
"""
import json

import torch

from index_hash import index_hash

torch.set_num_threads(1)


def values(length, seed):
    out = []
    for i in range(length):
        h = index_hash(i, seed)
        out.append(((h & 0xFFFFF) - 524288) * 2.0**-24)
    return torch.tensor(out, dtype=torch.float32)


cases = []
for length in [1, 3, 4, 7, 8, 9, 16, 31, 32, 33, 64, 100, 128, 255, 256, 512, 768, 1000, 1024, 4096, 5000, 16384, 32768]:
    for seed in range(3):
        x = values(length, seed).reshape(1, -1)
        cases.append({
            "length": length,
            "seed": seed,
            "sum": torch.sum(x, dim=1).item(),
            "norm": torch.linalg.vector_norm(x, dim=1).item(),
        })
# Above 32,768 elements torch splits a full sum across its threads.
threaded = []
for threads in (2, 3, 4):
    torch.set_num_threads(threads)
    for length in (32768, 40000, 100003, 300000):
        x = values(length, threads).reshape(1, -1)
        threaded.append({"length": length, "seed": threads, "threads": threads, "sum": torch.sum(x, dim=1).item()})
# 16-bit tensors (the values rounded to f16 or bf16): torch.norm of an f16 tensor takes the scalar path
# (one f32 accumulator per thread's range, not the vector lanes): with a large first value the later
# squares fall below half an ulp of that accumulator, so the order shows. A sum split across threads
# keeps its partial sums in the tensor's dtype.
half_norms = []
half_sums = []
for threads in (1, 2, 3):
    torch.set_num_threads(threads)
    for length in (1000, 32768, 40000, 100003, 300000):
        x = values(length, 7 + threads) / 4
        x[0] = 64
        half_norms.append({"length": length, "seed": 7 + threads, "threads": threads, "norm": torch.norm(x.to(torch.float16)).item()})
        for name, dtype in (("F16", torch.float16), ("BF16", torch.bfloat16)):
            y = values(length, 7 + threads).to(dtype)
            half_sums.append({"dtype": name, "length": length, "seed": 7 + threads, "threads": threads, "sum": torch.sum(y).item()})
torch.set_num_threads(1)
# sce's torch.var(task_vectors, dim=0, unbiased=False) over 2 to 5 models, in each dtype: Welford's
# update in f64, the result cast to the dtype.
variances = []
for models in (2, 3, 4, 5):
    for name, dtype in (("F32", torch.float32), ("BF16", torch.bfloat16), ("F16", torch.float16)):
        seeds = [20 + 5 * models + j for j in range(models)]
        tv = torch.stack([values(300, s) * (1 + j) for j, s in enumerate(seeds)]).to(dtype)
        var = torch.var(tv, dim=0, unbiased=False).float()
        variances.append({"dtype": name, "length": 300, "seeds": seeds, "variance": var.tolist()})
with open("test/fixtures/torch-reductions.json", "w") as f:
    json.dump({"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(), "cases": cases, "threaded": threaded, "halfNorms": half_norms, "halfSums": half_sums, "variances": variances}, f, indent=1)
print(len(cases), "cases")
