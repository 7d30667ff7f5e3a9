/**
 * The README.md model card of a merged model: mergekit's card (mergekit/card.py `generate_card`),
 * section for section, except that it names Alloy as the tool that made the merge and links
 * mergekit as the recipe format, since "created using mergekit" would not be true.
 */
import { existsSync } from 'node:fs';
import { stringify } from 'yaml';

/** Pretty name and reference of each merge method, from mergekit's registry and method files. */
export const METHOD_REFERENCES: Readonly<Record<string, { prettyName: string; url?: string }>> = {
  linear: { prettyName: 'Linear', url: 'https://arxiv.org/abs/2203.05482' },
  slerp: { prettyName: 'SLERP', url: 'https://en.wikipedia.org/wiki/Slerp' },
  nuslerp: { prettyName: 'NuSLERP' },
  multislerp: { prettyName: 'Multi-SLERP', url: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea' },
  passthrough: { prettyName: 'Passthrough' },
  nearswap: { prettyName: 'NearSwap', url: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001' },
  model_stock: { prettyName: 'Model Stock', url: 'https://arxiv.org/abs/2403.19522' },
  arcee_fusion: { prettyName: 'Arcee Fusion', url: 'https://arcee.ai' },
  karcher: { prettyName: 'Karcher Mean', url: 'https://en.wikipedia.org/wiki/Karcher_mean' },
  task_arithmetic: { prettyName: 'Task Arithmetic', url: 'https://arxiv.org/abs/2212.04089' },
  ties: { prettyName: 'TIES', url: 'https://arxiv.org/abs/2306.01708' },
  dare_ties: { prettyName: 'DARE TIES', url: 'https://arxiv.org/abs/2311.03099' },
  dare_linear: { prettyName: 'Linear DARE', url: 'https://arxiv.org/abs/2311.03099' },
  breadcrumbs: { prettyName: 'Model Breadcrumbs', url: 'https://arxiv.org/abs/2312.06795' },
  breadcrumbs_ties: { prettyName: 'Model Breadcrumbs with TIES', url: 'https://arxiv.org/abs/2312.06795' },
  della: { prettyName: 'DELLA', url: 'https://arxiv.org/abs/2406.11617' },
  della_linear: { prettyName: 'Linear DELLA', url: 'https://arxiv.org/abs/2406.11617' },
  sce: { prettyName: 'SCE', url: 'https://arxiv.org/abs/2408.07990' },
  ram: { prettyName: 'Reinforced Agent Merging', url: 'https://arxiv.org/abs/2601.13572' },
  ramplus_tl: { prettyName: 'Reinforced Agent Merging Plus (Tensor-Local)', url: 'https://arxiv.org/abs/2601.13572' },
};

export const MERGEKIT_URL = 'https://github.com/cg123/mergekit';

export interface ModelCardParams {
  /** The recipe's `merge_method`. */
  mergeMethod: string;
  /** The recipe's `base_model`, as written. */
  baseModel?: string;
  /** Model references as written (`org/name`, `org/name@rev`, `path+lora`), base model included or not. */
  models: string[];
  /** The recipe text, embedded verbatim (mergekit embeds the file as read). */
  recipeYaml: string;
  /** The card's title: mergekit uses the output folder's name, else "Untitled Model (1)". */
  name?: string;
  /** Whether a path is a Hugging Face repo (linked, and listed under `base_model`); see {@link looksLikeHubRepo}. */
  isHubModel?: (path: string) => boolean;
  /**
   * A multi-stage recipe's stages in the order they ran, the last one this model. The card then lists
   * the models of every stage (a reference to a stage written as that stage's name) and the stages.
   */
  stages?: StageCard[];
}

/** One stage of a multi-stage recipe, as its card names it. */
export interface StageCard {
  name: string;
  mergeMethod: string;
  baseModel?: string;
  /** Its model references as written, base model not included; one naming an earlier stage is that stage's name. */
  models: string[];
}

export function renderModelCard(params: ModelCardParams): string {
  const isHub = params.isHubModel ?? looksLikeHubRepo;
  const name = params.name || 'Untitled Model (1)';

  // mergekit: "curse my past self" — a slerp card names no base and lists every model.
  const actualBase = params.mergeMethod === 'slerp' ? undefined : params.baseModel;

  const stageNames = new Set((params.stages ?? []).map((stage) => stage.name));
  const withBase = (base: string | undefined, models: string[]) => [...(base !== undefined ? [base] : []), ...models];
  // A multi-stage card lists the models every stage read, not the stages themselves.
  const referenced = params.stages
    ? unique(params.stages.flatMap((stage) => withBase(stage.baseModel, stage.models))).filter((m) => !stageNames.has(m))
    : unique(withBase(params.baseModel, params.models));
  const hubBases: string[] = [];
  for (const raw of referenced) {
    const ref = parseReference(raw);
    if (isHub(ref.path)) hubBases.push(ref.path);
    if (ref.lora && isHub(ref.lora)) hubBases.push(ref.lora);
  }

  const baseText = actualBase === undefined ? '' : stageNames.has(actualBase) ? ` using the stage \`${actualBase}\` as a base` : ` using ${referenceMd(actualBase, isHub)} as a base`;
  const bullets = referenced.filter((m) => m !== actualBase).map((m) => `* ${referenceMd(m, isHub)}`);

  // As PyYAML's dump writes it for mergekit: keys sorted, list items not indented, a final newline
  // (so the front matter ends with a blank line before `---`, as mergekit's cards do).
  const metadata = stringify({ base_model: hubBases, library_name: 'transformers', tags: ['mergekit', 'merge'] }, { indentSeq: false });

  return [
    '---',
    metadata,
    '---',
    `# ${name}`,
    '',
    `This is a merge of pre-trained language models created using Alloy from a [mergekit](${MERGEKIT_URL}) recipe.`,
    '',
    '## Merge Details',
    '### Merge Method',
    '',
    `This model was merged using the ${methodMd(params.mergeMethod)} merge method${baseText}.`,
    '',
    ...(params.stages ? stagesSection(params.stages, isHub) : []),
    '### Models Merged',
    '',
    'The following models were included in the merge:',
    bullets.join('\n'),
    '',
    '### Configuration',
    '',
    'The following YAML configuration was used to produce this model:',
    '',
    '```yaml',
    params.recipeYaml,
    '```',
    '',
  ].join('\n');
}

/** The stages in run order, each with its method and the models (or earlier stages) it merged. */
function stagesSection(stages: StageCard[], isHub: (path: string) => boolean): string[] {
  const names = new Set(stages.map((stage) => stage.name));
  const md = (ref: string) => (names.has(ref) ? `\`${ref}\`` : referenceMd(ref, isHub));
  const lines = stages.map((stage, i) => {
    const what = i === stages.length - 1 ? 'this model' : `\`${stage.name}\``;
    const base = stage.baseModel !== undefined ? `, base ${md(stage.baseModel)}` : '';
    return `${i + 1}. ${what}: ${methodMd(stage.mergeMethod)} of ${stage.models.map(md).join(', ')}${base}`;
  });
  return ['### Stages', '', `This model was built by a recipe of ${stages.length} stages, run in this order; a stage named in another is that stage's output:`, '', ...lines, ''];
}

/** `[Pretty](url)`, the pretty name alone, or the name as written for a method mergekit doesn't know. */
export function methodMd(method: string): string {
  const ref = METHOD_REFERENCES[method];
  if (!ref) return method;
  return ref.url ? `[${ref.prettyName}](${ref.url})` : ref.prettyName;
}

/**
 * mergekit's is_hf without the network: not an absolute or home path, at most one `/`, made of
 * the characters a repo id may have, and not an existing local path. (Where the path exists,
 * mergekit asks the Hub; offline, Alloy treats it as local.)
 */
export function looksLikeHubRepo(path: string): boolean {
  if (path.length === 0 || '/~.'.includes(path[0]!)) return false;
  if (!/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(path)) return false;
  return !existsSync(path);
}

interface ParsedReference {
  path: string;
  lora?: string;
}

/** `path[@rev][+lora[@rev]]` → the paths (the card shows paths without revisions, as mergekit does). */
function parseReference(raw: string): ParsedReference {
  const plus = raw.indexOf('+');
  const model = plus >= 0 ? raw.slice(0, plus) : raw;
  const lora = plus >= 0 ? raw.slice(plus + 1) : undefined;
  const stripRev = (s: string): string => (s.includes('@') ? s.slice(0, s.indexOf('@')) : s);
  return { path: stripRev(model), ...(lora !== undefined ? { lora: stripRev(lora) } : {}) };
}

function linkIfHub(path: string, isHub: (path: string) => boolean): string {
  return isHub(path) ? `[${path}](https://huggingface.co/${path})` : path;
}

function referenceMd(raw: string, isHub: (path: string) => boolean): string {
  const ref = parseReference(raw);
  let text = linkIfHub(ref.path, isHub);
  if (ref.lora !== undefined) text += ' + ' + linkIfHub(ref.lora, isHub);
  return text;
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
