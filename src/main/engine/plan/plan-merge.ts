import { join } from 'node:path';
import { architectureModules, moduleLayerWeights, moduleNumLayers, resolveArchitecture, type ArchitectureDef, type ModuleInfo, type WeightInfo } from '../architecture';
import { EngineError } from '../errors';
import { checkParameter } from './check-parameter';
import { MERGE_METHODS } from '../methods/registry';
import { RecipeError } from '../recipe/parse-recipe';
import { closestKey } from '../recipe/suggest';
import type { MergeMethod, ParamValue } from '../methods/types';
import { ModelFolder, type ModelTensor } from '../model/model-folder';
import { previewModelPath, resolveModelPath, type ModelSearch } from '../model/resolve-model';
import { formatBytes } from '../../../shared/format';
import { referencedModels } from '../recipe/stage-graph';
import { resolveChatTemplate } from '../tokenizer/chat-template';
import { planTokenizer, type PlannedVocabulary } from '../tokenizer/plan-tokenizer';
import { vocabularyRows, type VocabularyRows } from '../tokenizer/vocabulary-rows';
import { makeOutputConfig } from '../output/output-config';
import { ParameterResolver } from '../recipe/evaluate-setting';
import type { InputModelDefinition, InputSliceDefinition, ModelReference, OutputSliceDefinition, ParameterMap, Recipe, SourcePosition } from '../recipe/types';
import { dtypeSize, isFloatDtype, parseTorchDtype, type Dtype, type FloatDtype } from '../safetensors/dtype';
import type { MergePlan, PlannedInput, PlannedShard, PlannedTensor } from './types';

export interface PlanMergeParams {
  recipe: Recipe;
  search?: ModelSearch;
  /** Bytes per output shard before a new one starts (mergekit's --out-shard-size; default 5B). */
  outShardSize?: number;
  seed?: number;
  allowCrimes?: boolean;
  /** mergekit's --unsafe-truncate-embeddings: cut vocabulary tensors of different lengths to the common rows. */
  unsafeTruncateEmbeddings?: boolean;
  /**
   * Merge base+LoRA references into the LoRA merge cache now, so the plan reads the merged models (a
   * merge about to run). Otherwise a plan builds nothing: it reads such a model's base headers, the
   * adapter checked against them, and warns what the merge will build first.
   */
  buildLoraMerges?: boolean;
}

export const DEFAULT_SHARD_SIZE = 5_000_000_000;

interface OpenModel {
  ref: ModelReference;
  key: string;
  folder: ModelFolder;
}

/** Recipe + model headers → every output tensor with its inputs, parameters and shard. Reads no tensor data. */
export async function planMerge(params: PlanMergeParams): Promise<MergePlan> {
  const { recipe } = params;
  const method = knownMethod(recipe);
  const models = new ModelTable(params.search ?? {}, params.buildLoraMerges === true);
  try {
    const merged = mergedModels(recipe);
    if (merged.length === 0) throw new EngineError('the recipe names no model', { key: 'models' });
    // Every merged model is opened before the architecture check, which looks at each.
    const opened = await Promise.all(merged.map((ref) => models.open(ref)));
    const archModel = recipe.baseModel ? await models.open(recipe.baseModel) : opened[0]!;
    const arch = resolveArchitecture(archModel.folder.config, join(archModel.folder.path, 'config.json'));
    if (!params.allowCrimes) await checkSameArchitecture(models, arch);
    const modules = await normalizeModules(recipe, arch, models);
    const builder = new PlanBuilder(recipe, method, arch, models, params.unsafeTruncateEmbeddings === true);
    await builder.buildVocabulary();
    await builder.addAll(modules);
    return builder.finish(params);
  } finally {
    await models.closeAll();
  }
}

/** The models a recipe merges (its tokenizer source aside), base first. */
function mergedModels(recipe: Recipe): ModelReference[] {
  const slices = [...(recipe.slices ?? []), ...(recipe.modules ?? []).flatMap((m) => m.slices ?? [])];
  return [
    ...(recipe.baseModel ? [recipe.baseModel] : []),
    ...(recipe.models ?? []).map((m) => m.model),
    ...(recipe.modules ?? []).flatMap((m) => (m.models ?? []).map((i) => i.model)),
    ...slices.flatMap((s) => [...s.sources.map((src) => src.model), ...(s.baseModel ? [s.baseModel] : [])]),
  ];
}

/** One module of the output with its slices (mergekit's OutputModuleDefinition after normalize_config). */
interface PlannedModule {
  module: ModuleInfo;
  slices: OutputSliceDefinition[];
  parameters?: ParameterMap;
  /** Given as slices (`slices:`, or `modules.X.slices`): only then does mergekit write the module's layer count to config.json. */
  sliced: boolean;
}

/** The recipe's merge method; an unknown name is an error at its line, with the nearest known name. */
function knownMethod(recipe: Recipe): MergeMethod {
  const method = MERGE_METHODS.get(recipe.mergeMethod);
  if (method) return method;
  const known = [...MERGE_METHODS.keys()];
  const at = recipe.positions['merge_method'];
  const message = `unknown merge_method "${recipe.mergeMethod}"${closestKey(recipe.mergeMethod, known)}; known: ${known.join(', ')}`;
  if (!at) throw new EngineError(message, { key: 'merge_method' });
  throw new RecipeError([{ file: at.file, line: at.line, column: at.column, key: 'merge_method', message }]);
}

/** mergekit's input contract: how many models the method takes in each slice (all of them, and those besides the base). */
function checkInputCount(method: MergeMethod, slice: OutputSliceDefinition, baseRef: ModelReference | undefined, where: SourcePosition | undefined): void {
  const { min, max, minOthers, maxOthers } = method.inputs ?? {};
  const count = slice.sources.length;
  const others = slice.sources.filter((s) => !baseRef || s.model.raw !== baseRef.raw).length;
  const fail = (what: string) => {
    throw new EngineError(`${at(slice.sources[0]?.model.position ?? where)}${method.name} ${what}`, { key: 'models', ...(slice.sources[0]?.model.position ?? where ?? {}) });
  };
  const listed = slice.sources.map((s) => s.model.raw).join(', ');
  if (min !== undefined && count < min) fail(`merges ${min === max ? 'exactly' : 'at least'} ${min} models (the base among them); here it has ${count}: ${listed}`);
  if (max !== undefined && count > max) fail(`merges ${min === max ? 'exactly' : 'at most'} ${max} model${max === 1 ? '' : 's'}${max === 1 ? ' per slice' : ' (the base among them)'}; here it has ${count}: ${listed}`);
  if (minOthers !== undefined && others < minOthers) fail(`merges ${minOthers === maxOthers ? 'exactly' : 'at least'} ${minOthers} model${minOthers === 1 ? '' : 's'} besides the base; here it has ${others}: ${listed}`);
  if (maxOthers !== undefined && others > maxOthers) fail(`merges ${minOthers === maxOthers ? 'exactly' : 'at most'} ${maxOthers} models besides the base; here it has ${others}: ${listed}`);
}

/** torch's promotion of the inputs' dtypes, which mergekit merges in without a `dtype:`: their own when they share one, else F32. */
function promotedDtype(inputs: PlannedInput[]): Dtype {
  const first = inputs[0]!.dtype;
  return inputs.every((input) => input.dtype === first) ? first : 'F32';
}

/** mergekit keys a slice's inputs by model reference: one model twice in a slice is an error there ("Duplicate merge inputs"). */
function refuseDuplicateSources(slice: OutputSliceDefinition): void {
  const seen = new Set<string>();
  for (const { model } of slice.sources) {
    const key = model.lora ? `${model.path}@${model.revision ?? ''}+${model.lora.path}@${model.lora.revision ?? ''}` : `${model.path}@${model.revision ?? ''}`;
    if (seen.has(key)) {
      throw new EngineError(`${at(model.position)}${model.raw} is listed twice in one slice; mergekit refuses duplicate merge inputs (merge it once, with one weight)`, { key: 'slices', ...(model.position ?? {}) });
    }
    seen.add(key);
  }
}

function at(position: SourcePosition | undefined): string {
  return position ? `${position.file}:${position.line}:${position.column}: ` : '';
}

/**
 * mergekit's normalize_config: `models:` merges every module of the architecture, each as one slice
 * over all its layers with the base model appended if absent; `slices:` needs a one-module
 * architecture; `modules:` names modules of the architecture, each with models or slices.
 */
async function normalizeModules(recipe: Recipe, arch: ArchitectureDef, models: ModelTable): Promise<PlannedModule[]> {
  const all = architectureModules(arch);
  const described = `a ${arch.modelType} model (${arch.architectures.join(', ')}) has ${all.length === 1 ? 'one module, "default"' : `the modules ${all.map((m) => `"${m.name}"`).join(', ')}`}`;
  if (recipe.models) {
    return Promise.all(all.map(async (module) => ({ module, slices: [await modelsToSlice(recipe, arch, module, recipe.models!, models)], sliced: false })));
  }
  if (recipe.slices) {
    if (all.length !== 1) {
      throw new EngineError(
        `${at(recipe.positions['slices'])}"slices:" cannot say which part of the model its layer ranges are in: ${described}. ` +
          `Write "modules:" instead, with slices under the module to slice (modules: {${all[0]!.name}: {slices: [...]}}) and "models:" under each other module to merge`,
        { key: 'slices', ...(recipe.positions['slices'] ?? {}) },
      );
    }
    return [{ module: all[0]!, slices: recipe.slices, sliced: true }];
  }
  const out: PlannedModule[] = [];
  for (const def of recipe.modules ?? []) {
    const module = all.find((m) => m.name === def.name);
    if (!module) {
      throw new EngineError(`${at(def.position)}unknown module "${def.name}" under modules: ${described}`, { key: 'modules', ...def.position });
    }
    const slices = def.slices ?? [await modelsToSlice(recipe, arch, module, def.models ?? [], models)];
    out.push({ module, slices, sliced: def.slices !== undefined, ...(def.parameters ? { parameters: def.parameters } : {}) });
  }
  return out;
}

/** A module's `models:` as one slice over all of its layers in each model, the base model appended when absent. */
async function modelsToSlice(recipe: Recipe, arch: ArchitectureDef, module: ModuleInfo, inputs: InputModelDefinition[], models: ModelTable): Promise<OutputSliceDefinition> {
  const sources: InputSliceDefinition[] = [];
  let baseIncluded = false;
  for (const m of inputs) {
    if (recipe.baseModel && m.model.raw === recipe.baseModel.raw) baseIncluded = true;
    const layers = moduleLayers(arch, module, await models.open(m.model));
    sources.push({ model: m.model, layerRange: [0, layers], ...(m.parameters ? { parameters: m.parameters } : {}) });
  }
  if (recipe.baseModel && !baseIncluded) {
    sources.push({ model: recipe.baseModel, layerRange: [0, moduleLayers(arch, module, await models.open(recipe.baseModel))] });
  }
  return { sources };
}

function moduleLayers(arch: ArchitectureDef, module: ModuleInfo, model: OpenModel): number {
  const configFile = join(model.folder.path, 'config.json');
  // A one-module model's own definition says where its count is (llama's num_hidden_layers, gpt2's n_layer).
  if (!arch.modules) return moduleNumLayers(arch, architectureModules(resolveArchitecture(model.folder.config, configFile))[0]!, model.folder.config, configFile);
  return moduleNumLayers(arch, module, model.folder.config, configFile);
}

async function checkSameArchitecture(models: ModelTable, arch: ArchitectureDef): Promise<void> {
  for (const m of models.all()) {
    const other = resolveArchitecture(m.folder.config, join(m.folder.path, 'config.json'));
    if (other.modelType !== arch.modelType) {
      throw new EngineError(`${m.ref.raw} is a ${other.modelType} model but the merge is ${arch.modelType}; mixing architectures needs --allow-crimes`);
    }
  }
}

class ModelTable {
  private byKey = new Map<string, Promise<OpenModel>>();
  private opened: OpenModel[] = [];
  /** What opening the models found that the plan should say: LoRA merges the run will build first. */
  readonly notes: string[] = [];

  constructor(
    private readonly search: ModelSearch,
    private readonly buildLoraMerges: boolean,
  ) {}

  open(ref: ModelReference): Promise<OpenModel> {
    const key = ref.raw;
    let model = this.byKey.get(key);
    if (!model) {
      model = (async () => {
        const folder = await ModelFolder.open(await this.pathOf(ref));
        const open = { ref, key, folder };
        this.opened.push(open);
        return open;
      })();
      this.byKey.set(key, model);
    }
    return model;
  }

  all(): OpenModel[] {
    return this.opened;
  }

  private async pathOf(ref: ModelReference): Promise<string> {
    if (this.buildLoraMerges || !ref.lora) return resolveModelPath(ref, this.search);
    const { path, pendingLora } = await previewModelPath(ref, this.search);
    if (pendingLora) {
      this.notes.push(`${ref.raw}: the merge first merges the LoRA adapter into its base (${formatBytes(pendingLora.bytes)} written to ${pendingLora.cacheDir}, kept for later merges); this plan reads the base's headers`);
    }
    return path;
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.byKey.values()].map(async (m) => (await m).folder.close()));
  }
}

class PlanBuilder {
  private readonly tensors: PlannedTensor[] = [];
  /** Where each name is in `tensors`. */
  private readonly plannedAt = new Map<string, number>();
  private readonly modelIndex = new Map<string, number>();
  private readonly modelList: { reference: string; path: string }[] = [];
  private outLayers = 0;
  /** Output layers of each module planned from slices, for config.json. */
  private readonly slicedLayers: { module: ModuleInfo; count: number }[] = [];
  private moduleParameters: ParameterMap | undefined;
  private readonly warnings: string[];
  private vocabulary: PlannedVocabulary | undefined;
  /** A warning that would repeat for every tensor is given once. */
  private readonly warnOnce = (message: string): void => {
    if (!this.warnings.includes(message)) this.warnings.push(message);
  };
  private chatTemplate: string | undefined;

  constructor(
    private readonly recipe: Recipe,
    private readonly method: MergeMethod,
    private readonly arch: ArchitectureDef,
    private readonly models: ModelTable,
    private readonly truncateEmbeddings: boolean,
  ) {
    this.warnings = [...(recipe.warnings ?? [])];
  }

  /** mergekit's plan_module for each module in turn: pre-weights with the first slice's models, the slices' layers, post-weights with the last slice's. */
  async addAll(modules: PlannedModule[]): Promise<void> {
    for (const { module, slices, parameters, sliced } of modules) {
      this.outLayers = 0;
      this.moduleParameters = parameters;
      const first = slices[0]!;
      const last = slices[slices.length - 1]!;
      for (const w of module.preWeights) {
        await this.addTensor(w, first.sources.map(() => w), first.sources.map((s) => s.model), first, 0);
      }
      for (const slice of slices) await this.addSlice(module, slice);
      // mergekit quirk: post weights take the last slice's models and parameters, zipped with as many
      // inputs as the first slice has (so at most that many of the last slice's models).
      const postSources = last.sources.slice(0, first.sources.length);
      for (const w of module.postWeights) {
        await this.addTensor(w, postSources.map(() => w), postSources.map((s) => s.model), last, 0);
      }
      if (sliced) this.slicedLayers.push({ module, count: this.outLayers });
    }
  }

  private async addSlice(module: ModuleInfo, slice: OutputSliceDefinition): Promise<void> {
    refuseDuplicateSources(slice);
    checkInputCount(this.method, slice, slice.baseModel ?? this.recipe.baseModel, this.recipe.positions['models'] ?? this.recipe.positions['slices']);
    const lengths = slice.sources.map((s) => s.layerRange[1] - s.layerRange[0]);
    if (lengths.some((l) => l !== lengths[0])) {
      const source = slice.sources[lengths.findIndex((l) => l !== lengths[0])]!;
      const ranges = slice.sources.map((s) => `${s.model.raw} [${s.layerRange.join(', ')}]`).join(', ');
      throw new EngineError(`${at(source.model.position)}all sources of a slice must have the same number of layers: ${ranges}`, { key: 'slices', ...(source.model.position ?? {}) });
    }
    for (const source of slice.sources) {
      const layers = moduleLayers(this.arch, module, await this.models.open(source.model));
      if (layers > 0 && source.layerRange[1] > layers) {
        throw new EngineError(`${at(source.model.position)}layer_range [${source.layerRange.join(', ')}] of ${source.model.raw} goes past its ${layers} layers (0 to ${layers})`, { key: 'slices', ...(source.model.position ?? {}) });
      }
    }
    const count = lengths[0]!;
    for (let idx = 0; idx < count; idx++) {
      const t = count > 1 ? idx / (count - 1) : 1;
      const outWeights = moduleLayerWeights(module, this.outLayers);
      const inWeights = slice.sources.map((s) => moduleLayerWeights(module, s.layerRange[0] + idx));
      for (const [w, out] of outWeights.entries()) {
        await this.addTensor(out, inWeights.map((ws) => ws[w]!), slice.sources.map((s) => s.model), slice, t);
      }
      this.outLayers++;
    }
  }

  private async addTensor(out: WeightInfo, ins: WeightInfo[], refs: ModelReference[], slice: OutputSliceDefinition, t: number): Promise<void> {
    const found: { model: OpenModel; tensor: ModelTensor | undefined; weight: WeightInfo }[] = [];
    for (const [i, ref] of refs.entries()) {
      const model = await this.models.open(ref);
      found.push({ model, tensor: findTensor(model.folder, ins[i]!), weight: ins[i]! });
    }
    // mergekit decides an optional weight is present by name and aliases only; tied names are a loading fallback.
    if (out.optional && !found.some((f) => hasOwnTensor(f.model.folder, f.weight))) return;
    const missing = found.find((f) => !f.tensor);
    if (missing) {
      throw new EngineError(`${missing.model.ref.raw} has no tensor "${missing.weight.name}"`, { tensor: missing.weight.name });
    }
    const baseRef = slice.baseModel ?? this.recipe.baseModel;
    const resolver = new ParameterResolver(this.recipe, slice, t, this.moduleParameters);
    const global: Record<string, ParamValue> = {};
    for (const p of this.method.parameters.filter((p) => p.scope === 'global')) {
      const resolved = resolver.lookup(p.name, { tensorName: out.name, required: p.required, default: p.default });
      const value = checkParameter(p, resolved, { tensor: out.name }, this.warnOnce);
      if (value !== undefined) global[p.name] = value;
    }
    const perModel = found.map((f) => {
      const isBase = baseRef !== undefined && f.model.ref.raw === baseRef.raw;
      const values: Record<string, ParamValue> = {};
      for (const p of this.method.parameters.filter((p) => p.scope === 'model')) {
        const resolved = resolver.lookup(p.name, { model: f.model.ref, tensorName: f.weight.name, required: p.required && !isBase, default: p.default });
        const value = checkParameter(p, resolved, { tensor: f.weight.name, model: f.model.ref.raw }, this.warnOnce);
        if (value !== undefined) values[p.name] = value;
      }
      return values;
    });
    const baseIndex = baseRef ? found.findIndex((f) => f.model.ref.raw === baseRef.raw) : -1;
    if (this.method.base === 'required' && baseIndex < 0) {
      throw new EngineError(`${this.method.name} needs a base_model among its inputs`, { key: 'base_model' });
    }
    const planned = found.map((f) => plannedInput(this.modelNumber(f.model), f.tensor!));
    const names = found.map((f) => f.model.ref.raw);
    const vocabulary = this.vocabulary && out.isEmbed ? this.vocabularyRows(out, planned, names, baseRef) : undefined;
    const inputs = vocabulary ? planned : this.sameShapes(out, planned, names);
    const first = inputs[0]!;
    const shape = vocabulary ? [vocabulary.size, ...first.shape.slice(1)] : first.shape;
    const floatInput = isFloatDtype(first.dtype);
    const computed = this.computeDtype() ?? promotedDtype(inputs);
    const result = this.method.resultDtype && isFloatDtype(computed) ? this.method.resultDtype(computed) : computed;
    const dtype: Dtype = floatInput ? (this.outDtype() ?? result) : first.dtype;
    // A name planned twice (Qwen2-VL's projector lists the same tensors for each of its two fixed
    // layers) is written once, from its last plan: mergekit saves it each time, and the last one
    // written is what its output holds (a gradient gives the two plans different values).
    const divergence = this.method.divergence?.({
      numel: shape.reduce((a, b) => a * b, 1),
      global,
      perModel,
      baseIndex: baseIndex >= 0 ? baseIndex : undefined,
      computeDtype: isFloatDtype(computed) ? computed : undefined,
    });
    if (divergence) this.warnOnce(divergence);
    const earlier = this.plannedAt.get(out.name);
    this.plannedAt.set(out.name, earlier ?? this.tensors.length);
    this.tensors.splice(earlier ?? this.tensors.length, earlier === undefined ? 0 : 1, {
      ...(vocabulary ? { vocabulary } : {}),
      name: out.name,
      shape,
      numel: shape.reduce((a, b) => a * b, 1),
      dtype,
      kind: !floatInput || (this.method.name === 'passthrough' && perModel[0]?.['scale'] === undefined && !vocabulary) ? 'copy' : 'merge',
      inputs,
      baseIndex: baseIndex >= 0 ? baseIndex : undefined,
      global,
      perModel,
      shard: -1,
    });
  }

  /**
   * Inputs of one shape. Vocabulary tensors (embeddings, LM heads) of different lengths are an error, as
   * in mergekit, unless --unsafe-truncate-embeddings cuts them to the common prefix of token rows (its
   * truncate_vocabulary, with its warning); any other difference is an error naming models and shapes.
   */
  private sameShapes(out: WeightInfo, inputs: PlannedInput[], refs: string[]): PlannedInput[] {
    const describe = () => inputs.map((input, i) => `${refs[i]} ${JSON.stringify(input.shape)}`).join(', ');
    const tail = (shape: number[]) => JSON.stringify(shape.slice(1));
    if (inputs.every((input) => JSON.stringify(input.shape) === JSON.stringify(inputs[0]!.shape))) return inputs;
    const vocabulary = out.isEmbed && inputs.every((input) => input.shape.length > 0 && tail(input.shape) === tail(inputs[0]!.shape));
    if (!vocabulary) throw new EngineError(`tensor "${out.name}" has different shapes in the models: ${describe()}`, { tensor: out.name });
    if (!this.truncateEmbeddings) {
      throw new EngineError(
        `tensor "${out.name}" has a different number of token rows in the models (${describe()}): their vocabularies differ. Set tokenizer_source to align them, or pass --unsafe-truncate-embeddings to keep the common rows (only right if those token ids mean the same in every model)`,
        { tensor: out.name },
      );
    }
    const rows = Math.min(...inputs.map((input) => input.shape[0]!));
    this.warnings.push(`UNSAFE vocabulary truncation for ${out.name}: ${describe()} -> ${rows} rows, assuming the kept token ids mean the same in every model`);
    return inputs.map((input) => {
      const rowBytes = input.byteLength / input.shape[0]!;
      return { ...input, shape: [rows, ...input.shape.slice(1)], byteLength: rows * rowBytes };
    });
  }

  private modelNumber(model: OpenModel): number {
    let n = this.modelIndex.get(model.key);
    if (n === undefined) {
      n = this.modelList.length;
      this.modelIndex.set(model.key, n);
      this.modelList.push({ reference: model.ref.raw, path: model.folder.path });
    }
    return n;
  }

  private computeDtype(): FloatDtype | undefined {
    return this.recipe.dtype ? parseTorchDtype(this.recipe.dtype) : undefined;
  }

  /** The output vocabulary, when the recipe sets tokenizer_source or tokenizer: (see planTokenizer). */
  async buildVocabulary(): Promise<void> {
    const donorRef = this.recipe.baseModel ?? referencedModels(this.recipe)[0];
    const setting = this.recipe.tokenizer?.source ?? this.recipe.tokenizerSource;
    if (setting === undefined || !donorRef) {
      // With a chat template, mergekit saves the donor's tokenizer again with it (the copy gets chat_template.jinja).
      if (this.recipe.chatTemplate) await this.resolveChatTemplate();
      return;
    }
    if (this.arch.modules) {
      // mergekit reads and writes a multimodal model's vocabulary size under its own key (Gemma 3: text_config.vocab_size); Alloy does not yet.
      const key = this.recipe.tokenizer ? 'tokenizer' : 'tokenizer_source';
      throw new EngineError(
        `${at(this.recipe.positions[key])}building a tokenizer (${key}) for a multimodal model (${this.arch.architectures[0]}) is not supported yet; leave it out to copy the base model's tokenizer files`,
        { key, ...(this.recipe.positions[key] ?? {}) },
      );
    }
    const asModel = async (ref: ModelReference) => {
      const m = await this.models.open(ref);
      return { ref: m.ref, dir: m.folder.path, config: m.folder.config };
    };
    const models = await Promise.all(referencedModels(this.recipe).map(asModel));
    const source = typeof setting === 'object' ? await asModel(setting) : undefined;
    this.vocabulary = await planTokenizer(this.recipe, models, await asModel(donorRef), source);
    if (this.recipe.chatTemplate) await this.resolveChatTemplate();
  }

  /** The recipe's chat_template as text: a built-in name, `auto` (the models' most common), or the template itself. */
  private async resolveChatTemplate(): Promise<void> {
    const dirs = await Promise.all(referencedModels(this.recipe).map(async (ref) => (await this.models.open(ref)).folder.path));
    const at = this.recipe.positions['chat_template'];
    this.chatTemplate = await resolveChatTemplate(this.recipe.chatTemplate!, dirs, at ? `${at.file}:${at.line}:${at.column}: ` : '');
  }

  /** How a vocabulary tensor's inputs are re-indexed to the output vocabulary (mergekit's PermutedVocabulary). */
  /** The rows of a vocabulary tensor; `baseRef` (the slice's base, else the recipe's) gives the tokens several inputs share. */
  private vocabularyRows(out: WeightInfo, inputs: PlannedInput[], refs: string[], baseRef: ModelReference | undefined): VocabularyRows {
    const tail = JSON.stringify(inputs[0]!.shape.slice(1));
    if (inputs.some((i) => i.shape.length === 0 || JSON.stringify(i.shape.slice(1)) !== tail)) {
      throw new EngineError(`tensor "${out.name}" has different widths in the models: ${inputs.map((i, n) => `${refs[n]} ${JSON.stringify(i.shape)}`).join(', ')}`, { tensor: out.name });
    }
    return vocabularyRows({
      vocabulary: this.vocabulary!,
      size: this.vocabulary!.size,
      models: refs,
      baseModel: baseRef?.raw,
      tokens: this.recipe.tokenizer?.tokens ?? {},
      tensorName: out.name,
    });
  }

  private outDtype(): FloatDtype | undefined {
    return this.recipe.outDtype ? parseTorchDtype(this.recipe.outDtype) : undefined;
  }

  async finish(params: PlanMergeParams): Promise<MergePlan> {
    const shards = assignShards(this.tensors, params.outShardSize ?? DEFAULT_SHARD_SIZE);
    const donorRef = this.recipe.baseModel ?? this.recipe.models?.[0]?.model ?? this.recipe.slices?.[0]?.sources[0]?.model ?? referencedModels(this.recipe)[0];
    const donor = donorRef ? await this.models.open(donorRef) : undefined;
    const computeDtype = this.computeDtype();
    const outputConfig = makeOutputConfig({
      baseConfig: this.vocabulary ? { ...donor!.folder.config, vocab_size: this.vocabulary.size } : donor!.folder.config,
      ...(this.arch.modules
        ? { moduleLayers: this.slicedLayers.map(({ module, count }) => ({ module: module.name, key: module.numLayersKey, count })) }
        : { numLayers: this.outLayers }),
      outDtype: this.recipe.outDtype ?? this.recipe.dtype,
      def: this.arch,
    });
    const modelRefs = this.modelList.map((m) => m.reference);
    return {
      ...(this.recipe.name ? { name: this.recipe.name } : {}),
      method: this.method.name,
      models: this.modelList,
      ...(this.recipe.baseModel && this.modelIndex.has(this.recipe.baseModel.raw) ? { baseModel: this.modelIndex.get(this.recipe.baseModel.raw)! } : {}),
      ...(computeDtype ? { computeDtype } : {}),
      tensors: this.tensors,
      shards,
      ...(shards.length > 1 ? { indexFile: 'model.safetensors.index.json' } : {}),
      bytesToRead: this.tensors.reduce((sum, t) => sum + t.inputs.reduce((s, i) => s + (t.kind === 'copy' ? 0 : i.byteLength), t.kind === 'copy' ? t.inputs[0]!.byteLength : 0), 0),
      bytesToWrite: shards.reduce((sum, s) => sum + s.bytes, 0),
      outputConfig,
      ...(donor ? { tokenizerFrom: this.vocabulary?.filesFrom ?? donor.folder.path } : {}),
      ...(this.vocabulary ? { tokenizerJson: this.vocabulary.tokenizer.text() } : {}),
      ...(this.chatTemplate ? { chatTemplate: this.chatTemplate } : {}),
      recipeText: this.recipe.source.text,
      modelCard: {
        mergeMethod: this.method.name,
        ...(this.recipe.baseModel ? { baseModel: this.recipe.baseModel.raw } : {}),
        models: modelRefs.filter((r) => r !== this.recipe.baseModel?.raw),
        recipeYaml: this.recipe.source.text,
      },
      seed: params.seed ?? 0,
      warnings: [...this.models.notes, ...this.warnings],
    };
  }
}

function hasOwnTensor(folder: ModelFolder, weight: WeightInfo): boolean {
  return [weight.name, ...(weight.aliases ?? [])].some((name) => folder.tensor(name) !== undefined);
}

/** The tensor for `weight` in a model, trying its aliases and tied names as mergekit does. */
function findTensor(folder: ModelFolder, weight: WeightInfo): ModelTensor | undefined {
  for (const name of [weight.name, ...(weight.aliases ?? []), ...(weight.tiedNames ?? [])]) {
    const tensor = folder.tensor(name);
    if (tensor) return tensor;
  }
  return undefined;
}

/**
 * mergekit's TensorWriter: tensors fill a shard in plan order until the next one would pass the
 * limit (in bytes, whatever --out-shard-size's help says); one shard is `model.safetensors`.
 */
export function assignShards(tensors: PlannedTensor[], maxShardBytes: number): PlannedShard[] {
  const groups: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = t.numel * dtypeSize(t.dtype);
    if (current.length > 0 && maxShardBytes > 0 && size + bytes > maxShardBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
  }
  if (current.length > 0) groups.push(current);
  const n = groups.length;
  return groups.map((group, i) => {
    const file = n === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    for (const t of group) t.shard = i;
    return { file, tensors: group.map((t) => t.name), bytes: group.reduce((s, t) => s + t.numel * dtypeSize(t.dtype), 0) };
  });
}

/** Where a plan reads one input: its file and offset, or, for a tensor converted on load, its stored parts in order. */
export function plannedInput(model: number, { entry, reader, parts }: ModelTensor): PlannedInput {
  return {
    model,
    tensor: entry.name,
    file: reader.path,
    offset: entry.offset,
    byteLength: entry.byteLength,
    dtype: entry.dtype,
    shape: entry.shape,
    ...(parts ? { parts: parts.map((p) => ({ file: p.reader.path, tensor: p.entry.name, byteLength: p.entry.byteLength })) } : {}),
  };
}
