import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runMerge } from '../../src/main/engine/run-merge';
import { describe, expect, it } from 'vitest';
import { NAMED_CHAT_TEMPLATES, resolveChatTemplate } from '../../src/main/engine/tokenizer/chat-template';
import { tempDir } from '../helpers';

async function modelWith(root: string, name: string, files: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return dir;
}

describe('chat_template', () => {
  it('names a known format', async () => {
    expect(await resolveChatTemplate('chatml', [], '')).toBe(NAMED_CHAT_TEMPLATES['chatml']);
    expect(NAMED_CHAT_TEMPLATES['chatml']).toContain('<|im_start|>');
  });

  it('auto: the template most models use, from chat_template.jinja or tokenizer_config.json', async () => {
    const root = await tempDir();
    const a = '{% for m in messages %}A{{ m.content }}{% endfor %}';
    const b = '{% for m in messages %}B{{ m.content }}{% endfor %}';
    const dirs = [
      await modelWith(root, 'one', { 'tokenizer_config.json': JSON.stringify({ chat_template: b }) }),
      await modelWith(root, 'two', { 'chat_template.jinja': a }),
      await modelWith(root, 'three', { 'tokenizer_config.json': JSON.stringify({ chat_template: [{ name: 'default', template: a }] }) }),
      await modelWith(root, 'none', {}),
    ];
    expect(await resolveChatTemplate('auto', dirs, '')).toBe(a);
    expect(await resolveChatTemplate('auto', [dirs[3]!], '')).toBeUndefined();
  });

  it('refuses what is neither a name nor a template, at the recipe position', async () => {
    await expect(resolveChatTemplate('chatmll', [], 'r.yml:9:1: ')).rejects.toThrow(/^r\.yml:9:1: chat_template: "chatmll" is neither a template nor one of auto, chatml/);
  });

  it('is saved over copied tokenizer files too, as mergekit saves the donor\'s tokenizer again with it', async () => {
    const out = join(await tempDir(), 'merged');
    const demo = resolve('resources/demo/models');
    const recipeText = `merge_method: linear\nmodels:\n  - {model: ${demo}/alloy-demo-base, parameters: {weight: 0.5}}\n  - {model: ${demo}/alloy-demo-chat, parameters: {weight: 0.5}}\nchat_template: chatml\n`;
    const { plan } = await runMerge({ recipeText, recipeFile: 'r.yml', outDir: out });
    expect(plan!.warnings.join()).not.toMatch(/chat_template/);
    expect(await readdir(out)).toContain('chat_template.jinja');
    expect(await readFile(join(out, 'chat_template.jinja'), 'utf8')).toBe(NAMED_CHAT_TEMPLATES['chatml']);
    expect(JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8'))).not.toHaveProperty('chat_template');
  });
});
