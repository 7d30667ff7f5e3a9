import { join } from 'node:path';
import type { AnalysisGroup } from '../../../shared/analysis';
import { layerWeights, numLayers, resolveArchitecture, type ArchitectureDef, type WeightInfo } from '../architecture';
import { EngineError } from '../errors';
import { ModelFolder, type ModelTensor } from '../model/model-folder';
import { resolveModelPath, type ModelSearch } from '../model/resolve-model';
import { parseModelReference } from '../recipe/parse-recipe';
import { isFloatDtype } from '../safetensors/dtype';

/** One tensor of a group: the base's, and each model's counterpart (undefined where a model lacks it or it differs in shape). */
export interface AnalysisTensor {
  name: string;
  base: ModelTensor;
  models: (ModelTensor | undefined)[];
}

export interface AnalysisPlanGroup {
  group: AnalysisGroup;
  tensors: AnalysisTensor[];
}

/** What an analysis will read, group by group, from the models' headers alone. */
export interface AnalysisPlan {
  architecture: ArchitectureDef;
  layers: number;
  groups: AnalysisPlanGroup[];
  /** Bytes of tensor data to read, base and models together. */
  totalBytes: number;
  tensors: number;
  warnings: string[];
  /** Closes every model's files. */
  close(): Promise<void>;
}

export interface PlanAnalysisParams {
  /** The model the others are compared with: a folder, a name under `search.modelRoots`, `org/name[@revision]`, `base+lora`. */
  base: string;
  /** The models compared with it, named the same ways. */
  models: string[];
  /** Where names are looked for. Default: the working folder and the Hugging Face cache. */
  search?: ModelSearch;
}

/**
 * Opens the base and the models (headers only), checks that they share one architecture and depth,
 * and groups the base's tensors as the architecture definition lists them: embeddings, each layer,
 * then the final norm and head.
 */
export async function planAnalysis({ base, models, search = {} }: PlanAnalysisParams): Promise<AnalysisPlan> {
  if (models.length === 0) throw new EngineError('an analysis compares at least one model with the base');
  const folders: ModelFolder[] = [];
  const close = () => Promise.all(folders.map((f) => f.close())).then(() => undefined);
  try {
    for (const name of [base, ...models]) folders.push(await openModel(name, search));
    const [baseFolder, ...modelFolders] = folders as [ModelFolder, ...ModelFolder[]];
    const architecture = resolveArchitecture(baseFolder.config, join(baseFolder.path, 'config.json'));
    const layers = numLayers(architecture, baseFolder.config, join(baseFolder.path, 'config.json'));
    modelFolders.forEach((folder, i) => checkSameShape(folder, models[i]!, architecture, layers, base));
    const warnings: string[] = [];
    const groups = groupWeights(architecture, layers)
      .map(({ group, weights }) => ({ group, tensors: weights.flatMap((w) => pairTensors(w, baseFolder, modelFolders, models, warnings)) }))
      .filter((g) => g.tensors.length > 0)
      .map((g, index) => ({ group: { ...g.group, index, tensors: g.tensors.map((t) => t.name) }, tensors: g.tensors }));
    let totalBytes = 0;
    let tensors = 0;
    for (const g of groups) {
      for (const t of g.tensors) {
        tensors++;
        totalBytes += t.base.entry.byteLength + t.models.reduce((sum, m) => sum + (m?.entry.byteLength ?? 0), 0);
      }
    }
    return { architecture, layers, groups, totalBytes, tensors, warnings, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function openModel(name: string, search: ModelSearch): Promise<ModelFolder> {
  const ref = parseModelReference(name.trim());
  if (typeof ref === 'string') throw new EngineError(ref, { key: 'model' });
  return ModelFolder.open(await resolveModelPath(ref, search));
}

function checkSameShape(folder: ModelFolder, name: string, architecture: ArchitectureDef, layers: number, baseName: string): void {
  const configFile = join(folder.path, 'config.json');
  const def = resolveArchitecture(folder.config, configFile);
  const depth = numLayers(def, folder.config, configFile);
  if (def !== architecture || depth !== layers) {
    throw new EngineError(
      `${name} is a ${def.modelType} model with ${depth} layers, the base ${baseName} a ${architecture.modelType} model with ${layers}: ` +
        'an analysis compares models of one architecture and depth',
      { file: configFile },
    );
  }
}

/** The architecture's weights by group, in the order a merge writes them. */
function groupWeights(def: ArchitectureDef, layers: number): { group: Omit<AnalysisGroup, 'index' | 'tensors'>; weights: WeightInfo[] }[] {
  return [
    { group: { kind: 'embed', label: 'embed' }, weights: def.preWeights },
    ...Array.from({ length: layers }, (_, layer) => ({ group: { kind: 'layer' as const, layer, label: String(layer) }, weights: layerWeights(def, layer) })),
    { group: { kind: 'head', label: 'head' }, weights: def.postWeights },
  ];
}

/** The weight in a model under its name or an alias. */
function find(folder: ModelFolder, w: WeightInfo): ModelTensor | undefined {
  for (const name of [w.name, ...(w.aliases ?? [])]) {
    const found = folder.tensor(name);
    if (found) return found;
  }
  return undefined;
}

/**
 * The base's tensor for `w` and each model's counterpart. A model without the weight itself is read
 * through its tied names (an LM head tied to the embeddings), as a merge reads it; what cannot be
 * compared is left out with a warning.
 */
function pairTensors(w: WeightInfo, base: ModelFolder, models: ModelFolder[], names: string[], warnings: string[]): AnalysisTensor[] {
  const own = find(base, w);
  if (!own) {
    if (!w.optional) warnings.push(`${w.name}: not in the base; left out`);
    return [];
  }
  if (!isFloatDtype(own.entry.dtype)) {
    warnings.push(`${own.entry.name}: ${own.entry.dtype} in the base, not a float tensor; left out`);
    return [];
  }
  const counterparts = models.map((folder, i) => {
    const found = find(folder, w) ?? (w.tiedNames ?? []).map((t) => folder.tensors.get(t)).find((t) => t !== undefined);
    if (!found) {
      warnings.push(`${own.entry.name}: not in ${names[i]}; left out of its comparison`);
      return undefined;
    }
    if (!isFloatDtype(found.entry.dtype) || found.entry.shape.join(',') !== own.entry.shape.join(',')) {
      warnings.push(`${own.entry.name}: ${found.entry.dtype}[${found.entry.shape}] in ${names[i]}, ${own.entry.dtype}[${own.entry.shape}] in the base; left out of its comparison`);
      return undefined;
    }
    return found;
  });
  return [{ name: own.entry.name, base: own, models: counterparts }];
}
