"""Writes test/fixtures/conversions.json: float32 bit patterns and what torch makes of them in
bfloat16 and float16 (round to nearest even, subnormals, overflow, NaN). Run with a Python that
has torch; CI only reads the JSON."""
import json
import struct

import torch

def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]

gen = torch.Generator().manual_seed(0)
values = torch.cat([
    torch.randn(2000, generator=gen),
    torch.randn(500, generator=gen) * 1e-6,
    torch.randn(500, generator=gen) * 7e4,
    torch.tensor([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 65519.99, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-40,
                  3.4e38, float("inf"), float("-inf"), 1.00390625, 1.01171875, 1.0078125 + 2**-10]),
])
# exact ties for bf16 and f16
ties = [struct.unpack("<f", struct.pack("<I", b))[0] for b in (0x3F808000, 0x3F818000, 0x3F801000, 0x3F803000, 0x33800000, 0x33C00000)]
values = torch.cat([values, torch.tensor(ties)])
f32 = values.to(torch.float32)
bf = f32.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
hf = f32.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF
out = {
    "torch": torch.__version__,
    "f32": [bits(float(v)) for v in f32.tolist()],
    "bf16": bf.tolist(),
    "f16": hf.tolist(),
}
with open("test/fixtures/conversions.json", "w") as f:
    json.dump(out, f)
print(len(out["f32"]), "vectors")
