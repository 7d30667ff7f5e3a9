import { mkdir, mkdtemp, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { resolveArchitecture } from '../../src/main/engine/architecture';
import { EngineError } from '../../src/main/engine/errors';
import { copyTokenizerFiles, mergekitCopiesTokenizer, TOKENIZER_FILES } from '../../src/main/engine/output/copy-tokenizer';
import { looksLikeHubRepo, methodMd, renderModelCard } from '../../src/main/engine/output/model-card';
import { makeOutputConfig } from '../../src/main/engine/output/output-config';

// Mistral-7B-v0.1's config.json, as shipped (older transformers: `torch_dtype`).
const MISTRAL_CONFIG = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.34.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};

const GPT2_CONFIG = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  vocab_size: 50257,
};

describe('makeOutputConfig', () => {
  const mistral = resolveArchitecture(MISTRAL_CONFIG, 'config.json');

  it('rewrites the layer count for a sliced merge and moves torch_dtype to dtype in place', () => {
    const out = makeOutputConfig({ baseConfig: MISTRAL_CONFIG, numLayers: 48, outDtype: 'float16', def: mistral });
    expect(out['num_hidden_layers']).toBe(48);
    expect(out['dtype']).toBe('float16');
    expect(out).not.toHaveProperty('torch_dtype');
    const keys = Object.keys(MISTRAL_CONFIG).map((k) => (k === 'torch_dtype' ? 'dtype' : k));
    expect(Object.keys(out)).toEqual(keys);
    // The input is not modified.
    expect(MISTRAL_CONFIG.num_hidden_layers).toBe(32);
    expect(MISTRAL_CONFIG.torch_dtype).toBe('bfloat16');
  });

  it('writes the layer count under the key the config uses: EXAONE says num_layers', () => {
    const base = { architectures: ['ExaoneForCausalLM'], model_type: 'exaone', num_layers: 32, hidden_size: 4096, vocab_size: 102400 };
    const exaone = resolveArchitecture(base, 'config.json');
    expect(makeOutputConfig({ baseConfig: base, numLayers: 48, def: exaone })).toEqual({ ...base, num_layers: 48 });
  });

  it('keeps the base dtype, renamed, when the recipe sets none', () => {
    const out = makeOutputConfig({ baseConfig: MISTRAL_CONFIG, def: mistral });
    expect(out['dtype']).toBe('bfloat16');
    expect(out['num_hidden_layers']).toBe(32);
    expect(out).not.toHaveProperty('torch_dtype');
  });

  it('normalizes dtype names and prefers an existing dtype key over torch_dtype', () => {
    const base = { model_type: 'mistral', dtype: 'float32', num_hidden_layers: 4, torch_dtype: 'float16' };
    const out = makeOutputConfig({ baseConfig: base, outDtype: 'torch.bfloat16', def: mistral });
    expect(out).toEqual({ model_type: 'mistral', dtype: 'bfloat16', num_hidden_layers: 4 });
    const kept = makeOutputConfig({ baseConfig: base, def: mistral });
    expect(kept['dtype']).toBe('float32');
  });

  it('appends dtype when the base config has none', () => {
    const out = makeOutputConfig({ baseConfig: GPT2_CONFIG, outDtype: 'bfloat16', def: resolveArchitecture(GPT2_CONFIG, 'config.json') });
    expect(Object.keys(out).at(-1)).toBe('dtype');
    expect(out['dtype']).toBe('bfloat16');
  });

  it("uses the architecture's layer key (gpt2: n_layer)", () => {
    const gpt2 = resolveArchitecture(GPT2_CONFIG, 'config.json');
    const out = makeOutputConfig({ baseConfig: GPT2_CONFIG, numLayers: 18, def: gpt2 });
    expect(out['n_layer']).toBe(18);
    expect(out).not.toHaveProperty('num_hidden_layers');
  });

  it('sets nested keys and refuses a missing parent', () => {
    const def = { ...mistral, numLayersKey: 'text_config.num_hidden_layers' };
    const out = makeOutputConfig({ baseConfig: { text_config: { num_hidden_layers: 32, hidden_size: 8 } }, numLayers: 40, def });
    expect(out['text_config']).toEqual({ num_hidden_layers: 40, hidden_size: 8 });
    expect(() => makeOutputConfig({ baseConfig: {}, numLayers: 40, def })).toThrow(EngineError);
  });
});

// The recipes of two cards on the Hub (Excalibur-7b's slerp; a ties merge from mergekit's examples).
const SLERP_RECIPE = `slices:
  - sources:
      - model: models/merliniteX-blockF2
        layer_range: [0, 32]
      - model: models/merliniteX-blockB1
        layer_range: [0, 32]
merge_method: slerp
base_model: models/merliniteX-blockF2
parameters:
  t:
    - filter: self_attn
      value: [1, 0.7, 0.3, 0.5, 0]
    - filter: mlp
      value: [0, 0.3, 0.7, 0.5, 1]
    - value: 0.5
dtype: float16
`;

const TIES_RECIPE = `models:
  - model: psmathur/orca_mini_v3_13b
    parameters:
      density: [1, 0.7, 0.1]
      weight: 1.0
  - model: garage-bAInd/Platypus2-13B
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1]
  - model: WizardLM/WizardMath-13B-V1.0
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: TheBloke/Llama-2-13B-fp16
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`;

function frontMatter(card: string): Record<string, unknown> {
  const m = /^---\n([\s\S]*?)---\n/.exec(card);
  expect(m).not.toBeNull();
  return parseYaml(m![1]!) as Record<string, unknown>;
}

describe('renderModelCard', () => {
  it('writes a slerp card: every model listed, no base named (mergekit quirk), local paths not linked', () => {
    const card = renderModelCard({
      mergeMethod: 'slerp',
      baseModel: 'models/merliniteX-blockF2',
      models: ['models/merliniteX-blockB1'],
      recipeYaml: SLERP_RECIPE,
      name: 'Excalibur-7b',
      isHubModel: () => false,
    });
    expect(card.startsWith('---\nbase_model: []\nlibrary_name: transformers\ntags:\n- mergekit\n- merge\n\n---\n# Excalibur-7b\n')).toBe(true);
    expect(card).toContain('created using Alloy from a [mergekit](https://github.com/cg123/mergekit) recipe.');
    expect(card).toContain('## Merge Details\n### Merge Method\n\nThis model was merged using the [SLERP](https://en.wikipedia.org/wiki/Slerp) merge method.\n');
    expect(card).toContain(
      '### Models Merged\n\nThe following models were included in the merge:\n* models/merliniteX-blockF2\n* models/merliniteX-blockB1\n\n### Configuration\n',
    );
    expect(card.endsWith('The following YAML configuration was used to produce this model:\n\n```yaml\n' + SLERP_RECIPE + '\n```\n')).toBe(true);
  });

  it('writes a ties card: base named and linked, the others listed, Hub repos under base_model', () => {
    const card = renderModelCard({
      mergeMethod: 'ties',
      baseModel: 'TheBloke/Llama-2-13B-fp16',
      models: ['psmathur/orca_mini_v3_13b', 'garage-bAInd/Platypus2-13B', 'WizardLM/WizardMath-13B-V1.0', 'TheBloke/Llama-2-13B-fp16'],
      recipeYaml: TIES_RECIPE,
      name: 'orca-platypus-wizard',
      isHubModel: () => true,
    });
    expect(frontMatter(card)).toEqual({
      base_model: ['TheBloke/Llama-2-13B-fp16', 'psmathur/orca_mini_v3_13b', 'garage-bAInd/Platypus2-13B', 'WizardLM/WizardMath-13B-V1.0'],
      library_name: 'transformers',
      tags: ['mergekit', 'merge'],
    });
    expect(card).toContain(
      'This model was merged using the [TIES](https://arxiv.org/abs/2306.01708) merge method using [TheBloke/Llama-2-13B-fp16](https://huggingface.co/TheBloke/Llama-2-13B-fp16) as a base.',
    );
    expect(card).toContain(
      [
        'The following models were included in the merge:',
        '* [psmathur/orca_mini_v3_13b](https://huggingface.co/psmathur/orca_mini_v3_13b)',
        '* [garage-bAInd/Platypus2-13B](https://huggingface.co/garage-bAInd/Platypus2-13B)',
        '* [WizardLM/WizardMath-13B-V1.0](https://huggingface.co/WizardLM/WizardMath-13B-V1.0)',
        '',
      ].join('\n'),
    );
    expect(card).not.toContain('* [TheBloke/Llama-2-13B-fp16]');
    expect(card).toContain('```yaml\n' + TIES_RECIPE);
  });

  it('strips revisions, shows LoRAs, and uses the default title', () => {
    const card = renderModelCard({
      mergeMethod: 'linear',
      models: ['org/a@main', 'org/b+org/lora-b'],
      recipeYaml: 'merge_method: linear',
      isHubModel: (p) => p.startsWith('org/'),
    });
    expect(card).toContain('# Untitled Model (1)\n');
    expect(card).toContain('* [org/a](https://huggingface.co/org/a)\n* [org/b](https://huggingface.co/org/b) + [org/lora-b](https://huggingface.co/org/lora-b)\n');
    expect(frontMatter(card)['base_model']).toEqual(['org/a', 'org/b', 'org/lora-b']);
    expect(card).toContain('the [Linear](https://arxiv.org/abs/2203.05482) merge method.');
  });

  it('writes a multi-stage card: the stages in order, the models every stage read, not the stages themselves', () => {
    const card = renderModelCard({
      mergeMethod: 'ties',
      baseModel: 'org/base',
      models: ['converge'],
      recipeYaml: 'name: reason\n---\nname: converge\n---\nmerge_method: ties',
      name: 'final',
      isHubModel: (p) => p.startsWith('org/'),
      stages: [
        { name: 'reason', mergeMethod: 'della', baseModel: 'org/base', models: ['org/a', 'org/b'] },
        { name: 'converge', mergeMethod: 'slerp', baseModel: 'reason', models: ['org/c'] },
        { name: '(final)', mergeMethod: 'ties', baseModel: 'org/base', models: ['converge'] },
      ],
    });
    expect(frontMatter(card)['base_model']).toEqual(['org/base', 'org/a', 'org/b', 'org/c']);
    expect(card).toContain(
      [
        '### Stages',
        '',
        "This model was built by a recipe of 3 stages, run in this order; a stage named in another is that stage's output:",
        '',
        '1. `reason`: [DELLA](https://arxiv.org/abs/2406.11617) of [org/a](https://huggingface.co/org/a), [org/b](https://huggingface.co/org/b), base [org/base](https://huggingface.co/org/base)',
        '2. `converge`: [SLERP](https://en.wikipedia.org/wiki/Slerp) of [org/c](https://huggingface.co/org/c), base `reason`',
        '3. this model: [TIES](https://arxiv.org/abs/2306.01708) of `converge`, base [org/base](https://huggingface.co/org/base)',
        '',
        '### Models Merged',
        '',
        'The following models were included in the merge:',
        '* [org/a](https://huggingface.co/org/a)\n* [org/b](https://huggingface.co/org/b)\n* [org/c](https://huggingface.co/org/c)',
        '',
      ].join('\n'),
    );
    expect(card).toContain('```yaml\nname: reason\n---\nname: converge\n---\nmerge_method: ties\n```');
  });

  it('names a stage used as the base by its name', () => {
    const card = renderModelCard({ mergeMethod: 'ties', baseModel: 'merged', models: ['org/a'], recipeYaml: '', stages: [
      { name: 'merged', mergeMethod: 'linear', models: ['org/a', 'org/b'] },
      { name: '(final)', mergeMethod: 'ties', baseModel: 'merged', models: ['org/a'] },
    ] });
    expect(card).toContain('merge method using the stage `merged` as a base.');
  });

  it("names methods as mergekit's registry does", () => {
    expect(methodMd('dare_ties')).toBe('[DARE TIES](https://arxiv.org/abs/2311.03099)');
    expect(methodMd('passthrough')).toBe('Passthrough');
    expect(methodMd('nuslerp')).toBe('NuSLERP');
    expect(methodMd('nearswap')).toBe('[NearSwap](https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001)');
    expect(methodMd('my_method')).toBe('my_method');
  });

  it('guesses Hub repos offline: repo ids that are not local paths', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'alloy-card-'));
    expect(looksLikeHubRepo('mistralai/Mistral-7B-v0.1')).toBe(true);
    expect(looksLikeHubRepo('gpt2')).toBe(true);
    expect(looksLikeHubRepo('/home/me/models/x')).toBe(false);
    expect(looksLikeHubRepo('~/models/x')).toBe(false);
    expect(looksLikeHubRepo('./models/x')).toBe(false);
    expect(looksLikeHubRepo('a/b/c')).toBe(false);
    expect(looksLikeHubRepo('C:\\models\\x')).toBe(false);
    expect(looksLikeHubRepo(dir)).toBe(false);
  });
});

describe('copyTokenizerFiles', () => {
  it('copies the tokenizer files present, generation_config included, and nothing else', async () => {
    const from = await mkdtemp(join(tmpdir(), 'alloy-tok-from-'));
    const to = await mkdtemp(join(tmpdir(), 'alloy-tok-to-'));
    const files: Record<string, string> = {
      'tokenizer.json': '{"version":"1.0","model":{"type":"BPE"}}',
      'tokenizer_config.json': '{"bos_token":"<s>","eos_token":"</s>","model_max_length":32768}',
      'special_tokens_map.json': '{"bos_token":"<s>"}',
      'tokenizer.model': 'sentencepiece-bytes',
      'generation_config.json': '{"bos_token_id":1,"eos_token_id":2}',
      'chat_template.jinja': '{% for m in messages %}{{ m.content }}{% endfor %}',
      'config.json': '{}',
      'model.safetensors': 'x',
      'README.md': '# not copied',
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(from, name), text);
    await mkdir(join(from, 'vocab.json')); // a folder with a tokenizer file's name is not copied

    const copied = await copyTokenizerFiles(from, to);
    expect(copied).toEqual(['tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'chat_template.jinja', 'generation_config.json']);
    expect((await readdir(to)).sort()).toEqual([...copied].sort());
    for (const name of copied) expect(await readFile(join(to, name), 'utf8')).toBe(files[name]);
    expect(await mergekitCopiesTokenizer(from)).toBe(true);
  });

  it('copies a GPT-2 style tokenizer through links, as the Hugging Face cache stores files', async () => {
    const blobs = await mkdtemp(join(tmpdir(), 'alloy-tok-blobs-'));
    const from = await mkdtemp(join(tmpdir(), 'alloy-tok-snap-'));
    const to = await mkdtemp(join(tmpdir(), 'alloy-tok-to-'));
    for (const name of ['vocab.json', 'merges.txt', 'tokenizer_config.json']) {
      await writeFile(join(blobs, name + '.blob'), `${name} contents`);
      await symlink(join(blobs, name + '.blob'), join(from, name));
    }
    const copied = await copyTokenizerFiles(from, to);
    expect(copied).toEqual(['tokenizer_config.json', 'vocab.json', 'merges.txt']);
    expect(await readFile(join(to, 'merges.txt'), 'utf8')).toBe('merges.txt contents');
    // Without tokenizer.json or tokenizer.model mergekit would re-save the tokenizer instead.
    expect(await mergekitCopiesTokenizer(from)).toBe(false);
  });

  it('returns nothing for a model without a tokenizer', async () => {
    const from = await mkdtemp(join(tmpdir(), 'alloy-tok-empty-'));
    const to = await mkdtemp(join(tmpdir(), 'alloy-tok-to-'));
    expect(await copyTokenizerFiles(from, to)).toEqual([]);
    expect(TOKENIZER_FILES).toContain('generation_config.json');
  });
});
