import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors';

/**
 * Chat formats a recipe can name in `chat_template:`, written for Alloy from each format's public
 * description (mergekit ships its own files for these names; the prompts they render are the same).
 */
export const NAMED_CHAT_TEMPLATES: Readonly<Record<string, string>> = {
  chatml:
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  llama3:
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  alpaca:
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
  mistral:
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
};

/**
 * The chat template a recipe's `chat_template:` stands for (mergekit's _set_chat_template): `auto`,
 * the template most of the models use; a name from {@link NAMED_CHAT_TEMPLATES}; or a literal Jinja
 * template. Undefined for `auto` when no model has one.
 */
export async function resolveChatTemplate(setting: string, modelDirs: string[], where: string): Promise<string | undefined> {
  if (setting === 'auto') return plurality(await Promise.all(modelDirs.map(chatTemplateOf)));
  const named = NAMED_CHAT_TEMPLATES[setting];
  if (named) return named;
  if (setting.length < 20 || !setting.includes('{')) {
    throw new EngineError(`${where}chat_template: "${setting}" is neither a template nor one of auto, ${Object.keys(NAMED_CHAT_TEMPLATES).join(', ')}`, { key: 'chat_template' });
  }
  return setting;
}

/** A model's chat template: chat_template.jinja, else tokenizer_config.json's (its default, if several). */
async function chatTemplateOf(dir: string): Promise<string | undefined> {
  const file = await readFile(join(dir, 'chat_template.jinja'), 'utf8').catch(() => undefined);
  if (file) return file.trim();
  const config = await readFile(join(dir, 'tokenizer_config.json'), 'utf8').then(JSON.parse, () => undefined);
  let template: unknown = config?.chat_template;
  if (Array.isArray(template)) template = template.find((t: { name?: string }) => t.name === 'default')?.template;
  else if (template && typeof template === 'object') template = (template as Record<string, unknown>)['default'];
  return typeof template === 'string' && template ? template.trim() : undefined;
}

function plurality(templates: (string | undefined)[]): string | undefined {
  const counts = new Map<string, number>();
  for (const t of templates) if (t) counts.set(t, (counts.get(t) ?? 0) + 1);
  let best: string | undefined;
  for (const [t, n] of counts) if (best === undefined || n > counts.get(best)!) best = t;
  return best;
}
