"""PyTorch checkpoints for the .bin reader's tests (test/fixtures/pytorch), made with torch.save:
- llama-base-bin: the golden llama-base model saved as two pytorch_model-0000i-of-00002.bin shards
  with pytorch_model.bin.index.json, one tensor a bf16 copy and lm_head sharing embed's storage;
- hostile.bin: a checkpoint whose pickle calls os.system; strided.bin: a transposed (strided) view.

    python tools/oracle/make_pytorch_fixtures.py     # from the repository root, torch installed
"""
import glob
import json
import os
import pickle
import shutil
import zipfile

import torch
from safetensors.torch import load_file

ROOT = os.path.join("test", "fixtures", "pytorch")
SOURCE = os.path.join("test", "fixtures", "golden", "models", "llama-base")


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    out = os.path.join(ROOT, "llama-base-bin")
    os.makedirs(out)
    tensors = {}
    for f in sorted(glob.glob(os.path.join(SOURCE, "*.safetensors"))):
        tensors.update(load_file(f))
    names = sorted(tensors)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        state = {n: tensors[n].clone() for n in shard}
        torch.save(state, os.path.join(out, file))
        weight_map.update({n: file for n in shard})
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)
    shutil.copy(os.path.join(SOURCE, "config.json"), out)

    embed = torch.arange(48 * 16, dtype=torch.float32).reshape(48, 16) / 100
    torch.save({"embed": embed, "tied": embed, "row": embed[3], "bf16": embed.to(torch.bfloat16), "steps": torch.arange(5)}, os.path.join(ROOT, "shared.bin"))
    torch.save({"t": embed.t()}, os.path.join(ROOT, "strided.bin"))

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned > /tmp/alloy-pwned",))

    with zipfile.ZipFile(os.path.join(ROOT, "hostile.bin"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("hostile/data.pkl", pickle.dumps({"weight": Hostile()}, protocol=2))
        z.writestr("hostile/version", "3\n")


if __name__ == "__main__":
    main()
