import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Node, type Pair, type ScalarTag, type Tags, type YAMLMap } from 'yaml';
import { AliasProblem, resolveAliases } from './resolve-aliases';
import type { RecipeProblem } from '../../../shared/contract';
import { EngineError } from '../errors';
import { parseTorchDtype } from '../safetensors/dtype';
import { closestKey } from './suggest';
import type {
  ConditionalParameter,
  InputModelDefinition,
  InputSliceDefinition,
  ModelReference,
  OutputModuleDefinition,
  OutputSliceDefinition,
  ParameterMap,
  ParameterSetting,
  Recipe,
  SourcePosition,
  TokenEmbeddingConfig,
  TokenizerConfig,
} from './types';

/** Every problem of a recipe, each pointing at file:line:col. */
export class RecipeError extends EngineError {
  constructor(readonly problems: (RecipeProblem & { file: string })[]) {
    super(problems.map((p) => `${p.file}:${p.line ?? 1}:${p.column ?? 1}: ${p.message}`).join('\n'), {
      file: problems[0]?.file,
      line: problems[0]?.line,
      column: problems[0]?.column,
      key: problems[0]?.key,
    });
  }
}

const RECIPE_KEYS = ['name', 'merge_method', 'models', 'slices', 'base_model', 'dtype', 'out_dtype', 'tokenizer_source', 'tokenizer', 'chat_template', 'parameters', 'modules'];
const MODEL_KEYS = ['model', 'parameters'];
const SOURCE_KEYS = ['model', 'layer_range', 'parameters'];
const SLICE_KEYS = ['sources', 'base_model', 'residual_weight', 'parameters'];
const MODULE_KEYS = ['models', 'slices', 'parameters'];
const TOKENIZER_KEYS = ['source', 'tokens', 'pad_to_multiple_of'];
const TOKEN_KEYS = ['source', 'force'];
/** Parameter names of mergekit's methods: written where mergekit ignores them, they earn a warning, not an error. */
const PARAMETER_NAMES = new Set(['t', 'weight', 'density', 'gamma', 'epsilon', 'lambda', 'normalize', 'rescale', 'int8_mask', 'scale', 'filter_wise', 'select_topk', 'nuslerp_flatten', 'nuslerp_row_wise', 'max_iter', 'tol', 'eps']);

class DocumentReader {
  readonly problems: (RecipeProblem & { file: string })[] = [];
  readonly warnings: string[] = [];

  constructor(
    readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  position(node: Node | Pair['key'] | null | undefined): SourcePosition {
    const offset = (node as Node | undefined)?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, column: col };
  }

  problem(node: Node | Pair['key'] | null | undefined, message: string, key?: string): void {
    const { line, column } = this.position(node);
    this.problems.push({ file: this.file, message, line, column, ...(key ? { key } : {}) });
  }

  warn(node: Node | Pair['key'] | null | undefined, message: string): void {
    const { line, column } = this.position(node);
    this.warnings.push(`${this.file}:${line}:${column}: ${message}`);
  }

  /** The pairs of a mapping by key, reporting keys outside `known`. */
  fields(node: Node | null | undefined, known: string[], where: string): Map<string, Pair<Node, Node>> | undefined {
    if (!isMap(node)) {
      this.problem(node, `${where} must be a mapping`);
      return undefined;
    }
    const out = new Map<string, Pair<Node, Node>>();
    for (const pair of (node as YAMLMap<Node, Node>).items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (known.includes(key)) {
        out.set(key, pair);
      } else if (PARAMETER_NAMES.has(key)) {
        this.warn(pair.key, `"${key}" is not a key of ${where}, so mergekit ignores it and so does Alloy; to set it here write "parameters: {${key}: ...}"`);
      } else {
        this.problem(pair.key, `unknown key "${key}" in ${where}${closestKey(key, known)}`, key);
      }
    }
    return out;
  }

  string(node: Node | null | undefined, what: string): string | undefined {
    if (isScalar(node) && typeof node.value === 'string') return node.value;
    if (isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean')) return String(node.value);
    this.problem(node, `${what} must be a string`);
    return undefined;
  }

  number(node: Node | null | undefined, what: string): number | undefined {
    if (isScalar(node) && typeof node.value === 'number') {
      if (Number.isFinite(node.value)) return node.value;
      this.problem(node, `${what} must be a finite number, not ${node.value}`);
      return undefined;
    }
    this.problem(node, `${what} must be a number`);
    return undefined;
  }

  integer(node: Node | null | undefined, what: string): number | undefined {
    const n = this.number(node, what);
    if (n !== undefined && !Number.isInteger(n)) {
      this.problem(node, `${what} must be a whole number`);
      return undefined;
    }
    return n;
  }
}

/**
 * YAML as PyYAML's safe_load reads it for mergekit: yes/no/on/off are booleans, merge keys (`<<`)
 * merge, and a key written twice takes its last value.
 */
const PYYAML_OPTIONS = {
  uniqueKeys: false,
  merge: true,
  customTags: (tags: Tags) => [PYYAML_BOOLEANS, ...tags],
};

const PYYAML_BOOLEANS: ScalarTag = {
  tag: 'tag:yaml.org,2002:bool',
  default: true,
  test: /^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$/,
  resolve: (word: string) => /^(?:yes|Yes|YES|on|On|ON)$/.test(word),
};

/** Parses a YAML stream of one or more mergekit recipes, collecting every problem with its position. */
export function parseRecipes(text: string, file: string): Recipe[] {
  const lines = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, ...PYYAML_OPTIONS });
  const reader = new DocumentReader(file, lines);
  if (!Array.isArray(documents)) return [];
  const recipes: Recipe[] = [];
  for (const doc of documents) {
    for (const error of doc.errors) {
      const { line, col } = lines.linePos(error.pos[0]);
      reader.problems.push({ file, message: `YAML: ${error.message.split('\n')[0]}`, line, column: col });
    }
    const empty = doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null);
    if (doc.errors.length > 0 || empty) continue;
    const start = doc.range[0];
    const end = doc.range[2];
    let root: Node;
    try {
      root = resolveAliases(doc, doc.contents as Node);
    } catch (error) {
      if (!(error instanceof AliasProblem)) throw error;
      reader.problem(error.node, `YAML: ${error.message}`);
      continue;
    }
    const recipe = readRecipe(reader, root, text.slice(start, end));
    if (recipe) recipes.push(recipe);
  }
  if (recipes.length === 0 && reader.problems.length === 0) reader.problems.push({ file, message: 'the recipe is empty', line: 1, column: 1 });
  if (reader.problems.length > 0) throw new RecipeError(reader.problems);
  for (const recipe of recipes) recipe.warnings = reader.warnings;
  return recipes;
}

function readRecipe(r: DocumentReader, root: Node, text: string): Recipe | undefined {
  const before = r.problems.length;
  const fields = r.fields(root, RECIPE_KEYS, 'the recipe');
  if (!fields) return undefined;
  const positions: Record<string, SourcePosition> = {};
  for (const [key, pair] of fields) positions[key] = r.position(pair.key);
  const value = (key: string) => fields.get(key)?.value ?? null;
  const recipe: Partial<Recipe> = { source: { file: r.file, text }, positions };

  const method = fields.has('merge_method') ? r.string(value('merge_method'), 'merge_method') : undefined;
  if (!fields.has('merge_method')) r.problem(root, 'the recipe has no "merge_method"', 'merge_method');
  if (method) recipe.mergeMethod = method;
  if (fields.has('name')) {
    const name = r.string(value('name'), 'name');
    if (name) recipe.name = name;
  }
  if (fields.has('base_model')) {
    const ref = readModelReference(r, value('base_model'), 'base_model');
    if (ref) recipe.baseModel = ref;
  }
  for (const key of ['dtype', 'out_dtype'] as const) {
    if (!fields.has(key)) continue;
    const dtype = r.string(value(key), key);
    if (dtype && !parseTorchDtype(dtype)) r.problem(value(key), `${key} "${dtype}" is not one of float32, float16, bfloat16`, key);
    else if (dtype) recipe[key === 'dtype' ? 'dtype' : 'outDtype'] = dtype;
  }
  if (fields.has('chat_template')) {
    const template = r.string(value('chat_template'), 'chat_template');
    if (template) recipe.chatTemplate = template;
  }
  if (fields.has('tokenizer_source')) {
    const source = readTokenizerSource(r, value('tokenizer_source'), 'tokenizer_source');
    if (source) recipe.tokenizerSource = source;
  }
  if (fields.has('tokenizer')) {
    const tokenizer = readTokenizer(r, value('tokenizer'));
    if (tokenizer) recipe.tokenizer = tokenizer;
    if (fields.has('tokenizer_source')) r.problem(fields.get('tokenizer')!.key, 'give either tokenizer_source or tokenizer, not both', 'tokenizer');
  }
  if (fields.has('parameters')) {
    const params = readParameters(r, value('parameters'), 'parameters');
    if (params) recipe.parameters = params;
  }
  // mergekit: "Exactly one of 'models', 'slices', or 'modules' must be present".
  const given = [...fields.keys()].filter((k) => k === 'models' || k === 'slices' || k === 'modules');
  if (given.length === 0) r.problem(root, 'a recipe needs exactly one of "models", "slices" or "modules"', 'models');
  for (const extra of given.slice(1)) {
    r.problem(fields.get(extra)!.key, `a recipe needs exactly one of "models", "slices" or "modules", but this one has "${given[0]}" and "${extra}"`, extra);
  }
  if (fields.has('models')) recipe.models = readList(r, value('models'), 'models', (node, i) => readInputModel(r, node, `models[${i}]`));
  if (fields.has('slices')) recipe.slices = readList(r, value('slices'), 'slices', (node, i) => readSlice(r, node, `slices[${i}]`));
  if (fields.has('modules')) recipe.modules = readModules(r, value('modules'));
  return r.problems.length === before ? (recipe as Recipe) : undefined;
}

/** `modules:` — a mapping of module name to {models | slices, parameters}. Names are checked against the architecture when planning. */
function readModules(r: DocumentReader, node: Node | null): OutputModuleDefinition[] {
  if (!isMap(node) || (node as YAMLMap).items.length === 0) {
    r.problem(node, 'modules must be a non-empty mapping of module names (text_decoder, vision_tower, ...) to their models or slices', 'modules');
    return [];
  }
  const out: OutputModuleDefinition[] = [];
  for (const pair of (node as YAMLMap<Node, Node>).items) {
    const name = isScalar(pair.key) ? String(pair.key.value) : '';
    const where = `modules.${name}`;
    const fields = r.fields(pair.value, MODULE_KEYS, where);
    if (!fields) continue;
    const module: OutputModuleDefinition = { name, position: r.position(pair.key) };
    const hasModels = fields.has('models');
    const hasSlices = fields.has('slices');
    // mergekit: "Must specify either output slices or models to merge".
    if (hasModels === hasSlices) {
      r.problem(hasModels ? fields.get('slices')!.key : pair.key, `${where} needs exactly one of "models" or "slices"`, hasModels ? 'slices' : 'models');
    }
    if (hasModels) module.models = readList(r, fields.get('models')!.value, `${where}.models`, (n, i) => readInputModel(r, n, `${where}.models[${i}]`));
    if (hasSlices) module.slices = readList(r, fields.get('slices')!.value, `${where}.slices`, (n, i) => readSlice(r, n, `${where}.slices[${i}]`));
    if (fields.has('parameters')) {
      const params = readParameters(r, fields.get('parameters')!.value, `${where}.parameters`);
      if (params) module.parameters = params;
    }
    out.push(module);
  }
  return out;
}

function readList<T>(r: DocumentReader, node: Node | null, what: string, item: (node: Node, index: number) => T | undefined): T[] {
  if (!isSeq(node) || node.items.length === 0) {
    r.problem(node, `${what} must be a non-empty list`, what);
    return [];
  }
  return node.items.flatMap((child, i) => {
    const value = item(child as Node, i);
    return value === undefined ? [] : [value];
  });
}

function readInputModel(r: DocumentReader, node: Node, where: string): InputModelDefinition | undefined {
  const fields = r.fields(node, MODEL_KEYS, where);
  if (!fields) return undefined;
  if (!fields.has('model')) {
    r.problem(node, `${where} has no "model"`, 'model');
    return undefined;
  }
  const model = readModelReference(r, fields.get('model')!.value, `${where}.model`);
  const parameters = fields.has('parameters') ? readParameters(r, fields.get('parameters')!.value, `${where}.parameters`) : undefined;
  return model ? { model, ...(parameters ? { parameters } : {}) } : undefined;
}

function readSlice(r: DocumentReader, node: Node, where: string): OutputSliceDefinition | undefined {
  const fields = r.fields(node, SLICE_KEYS, where);
  if (!fields) return undefined;
  if (!fields.has('sources')) {
    r.problem(node, `${where} has no "sources"`, 'sources');
    return undefined;
  }
  const sources = readList(r, fields.get('sources')!.value, `${where}.sources`, (n, i) => readSource(r, n, `${where}.sources[${i}]`));
  const slice: OutputSliceDefinition = { sources };
  if (fields.has('base_model')) {
    const base = readModelReference(r, fields.get('base_model')!.value, `${where}.base_model`);
    if (base) slice.baseModel = base;
  }
  if (fields.has('residual_weight')) {
    const w = r.number(fields.get('residual_weight')!.value, `${where}.residual_weight`);
    if (w !== undefined) slice.residualWeight = w;
  }
  if (fields.has('parameters')) {
    const params = readParameters(r, fields.get('parameters')!.value, `${where}.parameters`);
    if (params) slice.parameters = params;
  }
  return slice;
}

function readSource(r: DocumentReader, node: Node, where: string): InputSliceDefinition | undefined {
  const fields = r.fields(node, SOURCE_KEYS, where);
  if (!fields) return undefined;
  if (!fields.has('model')) r.problem(node, `${where} has no "model"`, 'model');
  if (!fields.has('layer_range')) r.problem(node, `${where} has no "layer_range"`, 'layer_range');
  if (!fields.has('model') || !fields.has('layer_range')) return undefined;
  const model = readModelReference(r, fields.get('model')!.value, `${where}.model`);
  const rangeNode = fields.get('layer_range')!.value;
  let layerRange: [number, number] | undefined;
  if (isSeq(rangeNode) && rangeNode.items.length === 2) {
    const [a, b] = rangeNode.items.map((n) => r.integer(n as Node, `${where}.layer_range`));
    if (a !== undefined && b !== undefined) {
      if (a < 0 || b <= a) r.problem(rangeNode, `${where}.layer_range [${a}, ${b}] must have 0 <= start < end`, 'layer_range');
      else layerRange = [a, b];
    }
  } else {
    r.problem(rangeNode, `${where}.layer_range must be [start, end]`, 'layer_range');
  }
  const parameters = fields.has('parameters') ? readParameters(r, fields.get('parameters')!.value, `${where}.parameters`) : undefined;
  return model && layerRange ? { model, layerRange, ...(parameters ? { parameters } : {}) } : undefined;
}

function readParameters(r: DocumentReader, node: Node | null, where: string): ParameterMap | undefined {
  if (!isMap(node)) {
    r.problem(node, `${where} must be a mapping of parameter names to values`);
    return undefined;
  }
  const values: Record<string, ParameterSetting> = {};
  const positions: Record<string, SourcePosition> = {};
  for (const pair of (node as YAMLMap<Node, Node>).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    const setting = readSetting(r, pair.value, `${where}.${key}`);
    if (setting !== undefined) {
      values[key] = setting;
      positions[key] = r.position(pair.key);
    }
  }
  return { values, positions };
}

/** mergekit's ParameterSetting: scalar, gradient, or a list of {filter, value}; a lone {filter, value} counts as a list of one. */
function readSetting(r: DocumentReader, node: Node | null, where: string): ParameterSetting | undefined {
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'number') return r.number(node, where);
    if (typeof v === 'boolean' || typeof v === 'string') return v;
    r.problem(node, `${where} has no value`);
    return undefined;
  }
  if (isMap(node)) {
    const one = readConditional(r, node, where);
    return one ? [one] : undefined;
  }
  if (isSeq(node)) {
    if (node.items.length === 0) {
      r.problem(node, `${where} is an empty list`);
      return undefined;
    }
    if (node.items.every((n) => isMap(n))) {
      const list = node.items.map((n, i) => readConditional(r, n as Node, `${where}[${i}]`));
      return list.every((c) => c) ? (list as ConditionalParameter[]) : undefined;
    }
    // Python's booleans are the integers 0 and 1: mergekit interpolates a list of them like numbers.
    const numbers = node.items.map((n) => (isScalar(n) && typeof n.value === 'boolean' ? Number(n.value) : r.number(n as Node, `${where} (a gradient)`)));
    return numbers.every((n) => n !== undefined) ? (numbers as number[]) : undefined;
  }
  r.problem(node, `${where} must be a number, a list of numbers or a list of {filter, value}`);
  return undefined;
}

function readConditional(r: DocumentReader, node: Node, where: string): ConditionalParameter | undefined {
  const fields = r.fields(node, ['filter', 'value'], where);
  if (!fields) return undefined;
  if (!fields.has('value')) {
    r.problem(node, `${where} has no "value"`, 'value');
    return undefined;
  }
  const value = readSetting(r, fields.get('value')!.value, `${where}.value`);
  if (Array.isArray(value) && typeof value[0] === 'object') {
    r.problem(fields.get('value')!.value, `${where}.value cannot itself hold filters`);
    return undefined;
  }
  const filter = fields.has('filter') ? r.string(fields.get('filter')!.value, `${where}.filter`) : undefined;
  if (value === undefined) return undefined;
  return { value: value as ConditionalParameter['value'], ...(filter !== undefined ? { filter } : {}) };
}

function readTokenizerSource(r: DocumentReader, node: Node | null, where: string): 'union' | 'base' | ModelReference | undefined {
  const text = r.string(node, where);
  if (text === 'union' || text === 'base') return text;
  if (text?.startsWith('model:')) {
    // Older mergekit recipes name a model as `model:<reference>`; 0.1.5 would take the prefix as part of the path.
    const ref = parseModelReference(text.slice('model:'.length).trim());
    if (typeof ref !== 'string') return ref;
    r.problem(node, ref, where);
    return undefined;
  }
  return text === undefined ? undefined : readModelReference(r, node, where);
}

function readTokenizer(r: DocumentReader, node: Node | null): TokenizerConfig | undefined {
  const fields = r.fields(node, TOKENIZER_KEYS, 'tokenizer');
  if (!fields) return undefined;
  const config: TokenizerConfig = { source: 'union' };
  if (fields.has('source')) {
    const source = readTokenizerSource(r, fields.get('source')!.value, 'tokenizer.source');
    if (source) config.source = source;
  }
  if (fields.has('pad_to_multiple_of')) {
    const pad = r.integer(fields.get('pad_to_multiple_of')!.value, 'tokenizer.pad_to_multiple_of');
    if (pad !== undefined) config.padToMultipleOf = pad;
  }
  if (fields.has('tokens')) {
    const tokensNode = fields.get('tokens')!.value;
    if (!isMap(tokensNode)) r.problem(tokensNode, 'tokenizer.tokens must be a mapping of tokens');
    else {
      config.tokens = {};
      for (const pair of (tokensNode as YAMLMap<Node, Node>).items) {
        const token = isScalar(pair.key) ? String(pair.key.value) : '';
        const entry = readTokenEntry(r, pair.value, `tokenizer.tokens["${token}"]`);
        if (entry) config.tokens[token] = entry;
      }
    }
  }
  return config;
}

function readTokenEntry(r: DocumentReader, node: Node | null, where: string): TokenEmbeddingConfig | undefined {
  const fields = r.fields(node, TOKEN_KEYS, where);
  if (!fields) return undefined;
  const entry: TokenEmbeddingConfig = {};
  if (fields.has('force')) {
    const force = fields.get('force')!.value;
    if (isScalar(force) && typeof force.value === 'boolean') entry.force = force.value;
    else r.problem(force, `${where}.force must be true or false`);
  }
  if (fields.has('source')) {
    const source = fields.get('source')!.value;
    if (isMap(source)) {
      const s = r.fields(source, ['kind', 'model', 'token', 'token_id'], `${where}.source`);
      const kind = s?.get('kind') ? r.string(s.get('kind')!.value, `${where}.source.kind`) : undefined;
      if (kind === 'zero') entry.source = { kind: 'zero' };
      else if (kind === 'model_token' && s) {
        const model = s.get('model') ? readModelReference(r, s.get('model')!.value, `${where}.source.model`) : undefined;
        const token = s.get('token') ? r.string(s.get('token')!.value, `${where}.source.token`) : undefined;
        const tokenId = s.get('token_id') ? r.integer(s.get('token_id')!.value, `${where}.source.token_id`) : undefined;
        if (!model) r.problem(source, `${where}.source needs a "model"`);
        else if ((token === undefined) === (tokenId === undefined)) r.problem(source, `${where}.source needs exactly one of "token" or "token_id"`);
        else entry.source = { kind: 'model_token', model, ...(token !== undefined ? { token } : {}), ...(tokenId !== undefined ? { tokenId } : {}) };
      } else r.problem(source, `${where}.source.kind must be "zero" or "model_token"`);
    } else {
      const model = readModelReference(r, source, `${where}.source`);
      if (model) entry.source = model;
    }
  }
  return entry;
}

/** mergekit's ModelReference: `path[@revision][+lora[@revision]]`. */
export function parseModelReference(raw: string): ModelReference | string {
  const chunks = raw.split('+');
  if (chunks.length > 2) return `can't parse model reference "${raw}" (more than one "+")`;
  const parts = chunks.map((chunk) => chunk.split('@'));
  for (const p of parts) if (p.length > 2) return `invalid model path "${raw}": more than one "@"`;
  if (parts.some((p) => !p[0])) return `invalid model reference "${raw}"`;
  const [model, lora] = parts as [string[], string[] | undefined];
  return {
    raw,
    path: model[0]!,
    ...(model[1] ? { revision: model[1] } : {}),
    ...(lora ? { lora: { path: lora[0]!, ...(lora[1] ? { revision: lora[1] } : {}) } } : {}),
  };
}

function readModelReference(r: DocumentReader, node: Node | null, where: string): ModelReference | undefined {
  const text = r.string(node, where);
  if (text === undefined) return undefined;
  const ref = parseModelReference(text.trim());
  if (typeof ref === 'string') {
    r.problem(node, ref, where);
    return undefined;
  }
  return { ...ref, position: r.position(node) };
}
