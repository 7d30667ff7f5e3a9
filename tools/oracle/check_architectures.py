"""Compares Alloy's architecture table (src/main/engine/architecture/definitions.ts) with the JSON
definitions of the installed mergekit, field by field: class names, tensor names in order, embedding
flags (mergekit's vocabulary_axis), optional, tied names, aliases and the layer-count key.

    python tools/oracle/check_architectures.py    # from the repository root, with mergekit installed
"""
import json
import subprocess
import sys

from mergekit.architecture.json_definitions import JSON_ARCHITECTURES

DUMP = "import { ARCHITECTURES } from './src/main/engine/architecture/definitions.ts'; console.log(JSON.stringify(ARCHITECTURES));"


def from_mergekit(w):
    return {"name": w.name, "isEmbed": w.vocabulary_axis is not None, "optional": w.optional,
            "tiedNames": list(w.tied_names or []), "aliases": list(w.aliases or [])}


def from_alloy(w):
    return {"name": w["name"], "isEmbed": bool(w.get("isEmbed")), "optional": bool(w.get("optional")),
            "tiedNames": w.get("tiedNames", []), "aliases": w.get("aliases", [])}


def main():
    alloy = json.loads(subprocess.run(["node", "--import", "tsx", "--input-type=module", "-e", DUMP], capture_output=True, text=True, check=True).stdout)
    mergekit = {}
    modular = {}
    for arch in JSON_ARCHITECTURES:
        if list(arch.modules) != ["default"]:
            modular.setdefault(arch.expected_model_type, []).append(arch)
            continue
        d = arch.modules["default"].architecture.definition
        mergekit.setdefault(d.expected_model_type, []).append(d)
    bad = 0
    for a in alloy:
        if a.get("modules"):
            bad += check_modular(a, modular)
            continue
        defs = [d for d in mergekit.get(a["modelType"], []) if set(d.architectures) & set(a["architectures"])]
        if len(defs) != 1:
            print(f"{a['modelType']}: {len(defs)} mergekit definitions match")
            bad += 1
            continue
        d = defs[0]
        want = {
            "architectures": sorted(d.architectures),
            "pre": [from_mergekit(w) for w in d.pre_weights],
            "layer": [from_mergekit(w) for w in d.layer_templates.weights],
            "post": [from_mergekit(w) for w in d.post_weights],
            "numLayersKey": d.num_layers_config_key or "num_hidden_layers",
        }
        got = {
            "architectures": sorted(a["architectures"]),
            "pre": [from_alloy(w) for w in a["preWeights"]],
            "layer": [from_alloy(w) for w in a["layerWeights"]],
            "post": [from_alloy(w) for w in a["postWeights"]],
            "numLayersKey": a["numLayersKey"],
        }
        for key in want:
            if want[key] != got[key]:
                bad += 1
                print(f"{a['modelType']}.{key}:\n  mergekit {want[key]}\n  alloy    {got[key]}")
    print(f"{len(alloy)} definitions checked, {bad} differences")
    sys.exit(1 if bad else 0)


def check_modular(a, modular):
    """A multimodal definition: class names, then each module's name (in order), prefix, tensors and layer count."""
    archs = [m for m in modular.get(a["modelType"], []) if set(m.architectures) & set(a["architectures"])]
    if len(archs) != 1:
        print(f"{a['modelType']}: {len(archs)} mergekit modular definitions match")
        return 1
    arch = archs[0]
    bad = 0
    want_names, got_names = list(arch.modules), [m["name"] for m in a["modules"]]
    if sorted(arch.architectures) != sorted(a["architectures"]) or want_names != got_names:
        print(f"{a['modelType']}: mergekit {sorted(arch.architectures)} {want_names}\n  alloy {sorted(a['architectures'])} {got_names}")
        bad += 1
    for m in a["modules"]:
        if m["name"] not in arch.modules:
            continue
        md = arch.modules[m["name"]]
        d = md.architecture.definition
        want = {"prefix": md.weight_prefix, "pre": [from_mergekit(w) for w in d.pre_weights], "layer": [from_mergekit(w) for w in d.layer_templates.weights],
                "post": [from_mergekit(w) for w in d.post_weights], "numLayersKey": d.num_layers_config_key, "fixedLayers": d.override_num_layers}
        got = {"prefix": m.get("weightPrefix"), "pre": [from_alloy(w) for w in m["preWeights"]], "layer": [from_alloy(w) for w in m["layerWeights"]],
               "post": [from_alloy(w) for w in m["postWeights"]], "numLayersKey": m.get("numLayersKey"), "fixedLayers": m.get("fixedLayers")}
        for key in want:
            if want[key] != got[key]:
                bad += 1
                print(f"{a['modelType']}.{m['name']}.{key}:\n  mergekit {want[key]}\n  alloy    {got[key]}")
    return bad


if __name__ == "__main__":
    main()
