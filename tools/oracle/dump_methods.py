"""Writes the merge methods mergekit registers, with each parameter's name, scope and default, to
test/fixtures/mergekit-methods.json; test/engine/registry.test.ts holds Alloy's registry to it.

    python tools/oracle/dump_methods.py            # from the repository root, mergekit installed
"""
import importlib.metadata
import json

from mergekit.merge_methods.registry import registered_methods


def default(p):
    d = getattr(p, "default", None)
    return d if isinstance(d, (bool, int, float)) or d is None else "required"


methods = [
    {"name": m.spec.name, "parameters": [{"name": p.name, "scope": p.scope.name, "default": default(p)} for p in m.spec.parameters]}
    for m in registered_methods()
]
with open("test/fixtures/mergekit-methods.json", "w") as f:
    json.dump({"mergekitVersion": importlib.metadata.version("mergekit"), "methods": methods}, f, indent=1)
print(f"{len(methods)} methods")
