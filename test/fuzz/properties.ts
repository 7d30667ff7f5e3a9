/**
 * The hostile-input properties, generators and checks together, shared by the property tests (a few
 * thousand cases in CI) and `npm run fuzz` (as many as asked). Checks use node:assert, so they run
 * outside vitest too. Each property gets a scratch folder of its own.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import fc from 'fast-check';
import { EngineError } from '../../src/main/engine/errors';
import { ModelFolder } from '../../src/main/engine/model/model-folder';
import { checkTokenizerFiles } from '../../src/main/engine/output/copy-tokenizer';
import { SafetensorsError, SafetensorsReader } from '../../src/main/engine/safetensors/reader';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import { describeStages, planRecipe } from '../../src/main/engine/run-merge';
import { RecipeError } from '../../src/main/engine/recipe/parse-recipe';

export const DEMO_MODELS = resolve('resources/demo/models');

export interface HostileProperty {
  name: string;
  /** Cases per CI run; `npm run fuzz` multiplies. */
  ciRuns: number;
  /** Builds the property over a scratch folder it may fill as it likes. */
  make(scratch: string): Promise<fc.IAsyncPropertyWithHooks<unknown[]> | fc.IAsyncProperty<unknown[]>>;
}

/** A refusal must be the engine's own error (its message is for the user), never a TypeError or a crash. */
function assertEngineError(error: unknown): asserts error is EngineError {
  if (!(error instanceof EngineError)) throw new Error(`not an EngineError: ${(error as Error)?.stack ?? String(error)}`);
}

/** The message starts with `path` (the file, or the folder holding it); a JSON syntax error adds the line and column. */
function assertNamesFileLine(error: EngineError, path: string): void {
  assert.ok(error.message.startsWith(path), `message does not start with ${path}: ${error.message}`);
  if (/not valid JSON/.test(error.message)) assert.match(error.message, new RegExp(`^${escape(path)}[^:]*:\\d+:\\d+: not valid JSON`));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ── safetensors headers ───────────────────────────────────────────────────────────────────────

const DTYPE_SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, U8: 1, BOOL: 1, F64: 8 };
const dtype = fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F12', 'bf16', '', 'F64');
const entry = fc.record({
  dtype,
  shape: fc.array(fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: -3, max: 2 ** 40 })), { maxLength: 4 }),
  data_offsets: fc.tuple(fc.integer({ min: -4, max: 200 }), fc.integer({ min: -4, max: 300 })),
});
export const safetensorsHeader = fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(entry, fc.anything()), { maxKeys: 6 });

/** A safetensors file: the length prefix (the true one unless `claimedLength`), the header, `dataBytes` zeros. */
export function safetensorsBytes(headerText: string, dataBytes: number, claimedLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

export const VALID_SAFETENSORS = safetensorsBytes(
  JSON.stringify({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] }, b: { dtype: 'BF16', shape: [4], data_offsets: [24, 32] } }),
  32,
);

let opened = 0;
export async function openSafetensorsBytes(dir: string, bytes: Uint8Array): Promise<SafetensorsReader | SafetensorsError> {
  const path = join(dir, `f${opened++ % 8}.safetensors`);
  await writeFile(path, bytes);
  try {
    return await SafetensorsReader.open(path);
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw error;
    return error;
  }
}

/** Whatever a file claims, the reader either refuses it with a SafetensorsError or every tensor lies inside it. */
export async function checkSafetensorsVerdict(dir: string, bytes: Uint8Array): Promise<void> {
  const result = await openSafetensorsBytes(dir, bytes);
  if (result instanceof SafetensorsError) return;
  try {
    for (const t of result.tensors.values()) {
      assert.ok(t.offset + t.byteLength <= bytes.byteLength, `${t.name} ends past the file`);
      assert.equal(t.byteLength, t.numel * DTYPE_SIZES[t.dtype]!);
      if (t.byteLength > 0) assert.equal((await result.read(t.name)).byteLength, t.byteLength);
    }
  } finally {
    await result.close();
  }
}

const safetensorsHeaders: HostileProperty = {
  name: 'safetensors: generated headers are refused or read safely',
  ciRuns: 1500,
  make: async (dir) => fc.asyncProperty(safetensorsHeader, fc.integer({ min: 0, max: 400 }), (h, data) => checkSafetensorsVerdict(dir, safetensorsBytes(JSON.stringify(h), data))),
};

const safetensorsCorruption: HostileProperty = {
  name: 'safetensors: byte-level corruptions of a valid file are refused or read safely',
  ciRuns: 1500,
  make: async (dir) =>
    fc.asyncProperty(fc.array(fc.tuple(fc.nat(VALID_SAFETENSORS.byteLength - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(VALID_SAFETENSORS.byteLength), async (edits, cut) => {
      const bytes = VALID_SAFETENSORS.slice(0, Math.max(cut, 1));
      for (const [at, value] of edits) if (at < bytes.byteLength) bytes[at] = value;
      await checkSafetensorsVerdict(dir, bytes);
    }),
};

// ── model folders: config.json, the index, tokenizer files ────────────────────────────────────

/** A model folder whose safetensors shards link to the demo model's, so each case rewrites only small files. */
async function linkedModel(dir: string, from = join(DEMO_MODELS, 'alloy-demo-chat')): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(from)) {
    if (name.endsWith('.safetensors')) await symlink(join(from, name), join(dir, name));
    else await cp(join(from, name), join(dir, name));
  }
  return dir;
}

/** Text edits: cut at a point, then replace, insert or delete characters at random places. */
const textEdits = fc.record({
  cut: fc.option(fc.nat(), { nil: undefined }),
  edits: fc.array(fc.tuple(fc.constantFrom('replace', 'insert', 'delete'), fc.nat(), fc.constantFrom('{', '}', '[', ']', '"', ',', ':', '\n', 'x', '1', '-', 'null', '\\', '\u0000', 'é')), { maxLength: 4 }),
});

function applyEdits(text: string, { cut, edits }: { cut: number | undefined; edits: [string, number, string][] }): string {
  let out = cut === undefined ? text : text.slice(0, cut % (text.length + 1));
  for (const [kind, at, char] of edits) {
    const i = out.length ? at % out.length : 0;
    out = kind === 'insert' ? out.slice(0, i) + char + out.slice(i) : kind === 'delete' ? out.slice(0, i) + out.slice(i + 1) : out.slice(0, i) + char + out.slice(i + 1);
  }
  return out;
}

/** The folder opens, or the refusal is an EngineError naming `file` (with line and column for broken JSON). */
async function expectOpensOrNames(dir: string, file: string): Promise<void> {
  try {
    const folder = await ModelFolder.open(dir);
    for (const shard of folder.shards) assert.ok(shard.path.startsWith(dir + sep), `${shard.path} is outside ${dir}`);
    await folder.close();
  } catch (error) {
    assertEngineError(error);
    assertNamesFileLine(error, file);
  }
}

const brokenConfig: HostileProperty = {
  name: 'config.json: corrupted texts open or are refused naming the file, line and column',
  ciRuns: 300,
  make: async (scratch) => {
    const dir = await linkedModel(join(scratch, 'config-model'));
    const valid = JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_hidden_layers: 4, vocab_size: 256 }, null, 2);
    return fc.asyncProperty(textEdits, async (edits) => {
      await writeFile(join(dir, 'config.json'), applyEdits(valid, edits));
      await expectOpensOrNames(dir, join(dir, 'config.json'));
    });
  },
};

const shardName = fc.oneof(
  fc.constantFrom('model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'missing.safetensors', '../alloy-demo-code/model-00001-of-00002.safetensors'),
  fc.constantFrom('/etc/passwd', '../../../../etc/passwd', 'sub/../../x.safetensors', './model-00001-of-00002.safetensors', '', '.', '..', 'config.json'),
  fc.string({ maxLength: 12 }),
);
const weightMap = fc.dictionary(fc.constantFrom('model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight', 'x'), fc.oneof(shardName, fc.anything()), { maxKeys: 4 });

const hostileIndex: HostileProperty = {
  name: 'model.safetensors.index.json: hostile weight maps never reach outside the folder, refusals name the index',
  ciRuns: 300,
  make: async (scratch) => {
    const dir = await linkedModel(join(scratch, 'index-model'));
    return fc.asyncProperty(fc.oneof(fc.record({ weight_map: weightMap }), fc.anything()), async (index) => {
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index) ?? 'undefined');
      await expectOpensOrNames(dir, dir);
    });
  },
};

const brokenTokenizer: HostileProperty = {
  name: 'tokenizer files: corrupted tokenizer.json / tokenizer_config.json are refused naming the file, line and column',
  ciRuns: 300,
  make: async (scratch) => {
    const dir = await linkedModel(join(scratch, 'tokenizer-model'));
    const originals = { 'tokenizer.json': JSON.stringify({ version: '1.0', model: { type: 'WordLevel', vocab: { a: 0, b: 1 } } }, null, 1), 'tokenizer_config.json': '{\n "eos_token": "</s>"\n}' };
    return fc.asyncProperty(fc.constantFrom('tokenizer.json', 'tokenizer_config.json'), textEdits, async (name, edits) => {
      for (const [file, text] of Object.entries(originals)) await writeFile(join(dir, file), file === name ? applyEdits(text, edits) : text);
      try {
        await checkTokenizerFiles(dir);
      } catch (error) {
        assertEngineError(error);
        assertNamesFileLine(error, join(dir, name));
      }
    });
  },
};

// ── recipes ───────────────────────────────────────────────────────────────────────────────────

const yamlValue = fc.oneof(
  fc.constantFrom('.nan', '.inf', '-.inf', 'null', '~', 'true', '"heavy"', '[]', '{}', '[1, .nan]', '[0.5, "x"]', '{filter: 3, value: 1}', '[{filter: mlp, value: 2}]', '1e400', '-1', '0', '1', '2', '0.5'),
  fc.double({ noNaN: false }).map((d) => (Number.isNaN(d) ? '.nan' : Number.isFinite(d) ? String(d) : d > 0 ? '.inf' : '-.inf')),
);
const METHODS = ['linear', 'ties', 'slerp', 'dare_linear', 'nearswap', 'task_arithmetic', 'della', 'model_stock', 'breadcrumbs'];
const parameterName = fc.constantFrom('weight', 'density', 't', 'epsilon', 'lambda', 'gamma', 'normalize', 'int8_mask', 'rescale', 'select_topk', 'nonsense');

const generatedRecipe = fc.record({
  method: fc.constantFrom(...METHODS),
  global: fc.dictionary(parameterName, yamlValue, { maxKeys: 3 }),
  perModel: fc.array(fc.dictionary(parameterName, yamlValue, { maxKeys: 3 }), { minLength: 2, maxLength: 2 }),
  dtype: fc.constantFrom(undefined, 'float32', 'bfloat16', 'float7', '3'),
});

function recipeText(r: typeof generatedRecipe extends fc.Arbitrary<infer T> ? T : never): string {
  const map = (values: Record<string, string>, indent: string) => Object.entries(values).map(([k, v]) => `${indent}${k}: ${v}\n`).join('');
  const models = ['alloy-demo-chat', 'alloy-demo-code'].map((m, i) => `  - model: ${m}\n    parameters:\n${map(r.perModel[i]!, '      ') || '      {}\n'}`).join('');
  const globals = Object.keys(r.global).length ? `parameters:\n${map(r.global, '  ')}` : '';
  return `merge_method: ${r.method}\nbase_model: alloy-demo-base\nmodels:\n${models}${globals}${r.dtype ? `dtype: ${r.dtype}\n` : ''}`;
}

/** Every planned parameter is of the declared type, and one outside its range was warned about. */
function assertParametersDeclared(plan: Awaited<ReturnType<typeof planRecipe>>): void {
  const method = getMergeMethod(plan.method);
  for (const tensor of plan.tensors) {
    for (const values of [tensor.global, ...tensor.perModel]) {
      for (const [name, value] of Object.entries(values ?? {})) {
        const decl = method.parameters.find((p) => p.name === name)!;
        if (decl.type === 'boolean') assert.equal(typeof value, 'boolean');
        else {
          assert.ok(typeof value === 'number' && Number.isFinite(value), `${name} = ${value} on ${tensor.name}`);
          // Out of the declared range runs as in mergekit, with a warning naming the parameter.
          const outside = (decl.min !== undefined && value < decl.min) || (decl.max !== undefined && value > decl.max);
          assert.ok(!outside || plan.warnings.some((w) => w.includes(`parameter "${name}"`)), `${name} = ${value} outside its range without a warning`);
        }
      }
    }
  }
}

const hostileRecipes: HostileProperty = {
  name: 'recipes: NaN, infinities and wrong types are refused at file:line:col; out-of-range parameters plan with a warning',
  ciRuns: 200,
  make: async () => {
    const recipeFile = join(DEMO_MODELS, 'fuzz.yml');
    return fc.asyncProperty(generatedRecipe, async (r) => {
      try {
        assertParametersDeclared(await planRecipe({ recipeText: recipeText(r), recipeFile, options: { modelRoots: [DEMO_MODELS] } }));
      } catch (error) {
        assertEngineError(error);
        if (error instanceof RecipeError) assert.match(error.message, new RegExp(`^${escape(recipeFile)}:\\d+:\\d+: `));
        else assert.ok(error.location.key || error.location.tensor || error.location.file, `no location: ${error.message}`);
      }
    });
  },
};

const stageGraphs: HostileProperty = {
  name: 'multi-stage recipes: any graph of references is ordered, or a cycle is refused at the reference that closes it',
  ciRuns: 300,
  make: async () =>
    fc.asyncProperty(fc.array(fc.array(fc.constantFrom('s0', 's1', 's2', 's3', 'x/s1', 'model-z'), { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 4 }), async (stages) => {
      const docs = stages.map((refs, i) => `name: s${i}\nmerge_method: linear\nmodels:\n${refs.map((m) => `  - model: ${m}\n    parameters: {weight: 1}\n`).join('')}`);
      try {
        const { graph } = describeStages(docs.join('---\n'), 'graph.yml');
        const position = new Map(graph.order.map((s, i) => [s.name, i]));
        for (const stage of graph.order) for (const dep of stage.dependsOn) assert.ok(position.get(dep)! < position.get(stage.name)!);
      } catch (error) {
        assertEngineError(error);
        assert.match(error.message, /^graph\.yml:\d+:\d+: the stages depend on each other in a cycle: (s\d → )+s\d$/);
      }
    }),
};

export const HOSTILE_PROPERTIES: HostileProperty[] = [safetensorsHeaders, safetensorsCorruption, brokenConfig, hostileIndex, brokenTokenizer, hostileRecipes, stageGraphs];
