// @vitest-environment happy-dom
import { mount } from '@vue/test-utils';
import { describe, expect, it } from 'vitest';
import { renderModelCard } from '../../src/main/engine/output/model-card';
import ModelCard from '../../src/renderer/src/components/ModelCard.vue';
import { parseInline, parseMarkdown } from '../../src/renderer/src/markdown/parse-markdown';

const RECIPE = 'merge_method: slerp\nbase_model: org/base\nmodels:\n  - model: org/base\n  - model: org/chat\nparameters:\n  t: 0.5\n';

describe('model cards', () => {
  it('parses the card the engine writes: metadata, title, links, the models list and the recipe', () => {
    const markdown = renderModelCard({ mergeMethod: 'slerp', baseModel: 'org/base', models: ['org/base', 'org/chat'], recipeYaml: RECIPE, name: 'my-merge' });
    const { frontMatter, blocks } = parseMarkdown(markdown);
    expect(frontMatter).toContain('library_name: transformers');
    expect(blocks[0]).toEqual({ kind: 'heading', level: 1, inlines: [{ kind: 'text', text: 'my-merge' }] });
    const links = blocks.flatMap((b) => (b.kind === 'paragraph' ? b.inlines : b.kind === 'list' ? b.items.flat() : [])).filter((i) => i.kind === 'link');
    expect(links.map((l) => (l.kind === 'link' ? l.href : ''))).toEqual(expect.arrayContaining(['https://github.com/cg123/mergekit', 'https://huggingface.co/org/chat']));
    const list = blocks.find((b) => b.kind === 'list');
    expect(list?.kind === 'list' && list.items.length).toBe(2);
    const code = blocks.find((b) => b.kind === 'code');
    expect(code).toEqual({ kind: 'code', language: 'yaml', text: RECIPE });
  });

  it('keeps anything but web links, and any HTML, as text', () => {
    expect(parseInline('[x](javascript:alert(1)) <img src=x onerror=alert(1)>')).toEqual([{ kind: 'text', text: '[x](javascript:alert(1)) <img src=x onerror=alert(1)>' }]);
    const wrapper = mount(ModelCard, { props: { markdown: '# <b>bold</b>\n\n<script>alert(1)</script> and [ok](https://example.com)\n' } });
    expect(wrapper.find('b').exists()).toBe(false);
    expect(wrapper.find('script').exists()).toBe(false);
    expect(wrapper.get('h2').text()).toBe('<b>bold</b>');
    expect(wrapper.get('a').attributes()).toMatchObject({ href: 'https://example.com', rel: 'noreferrer noopener' });
  });

  it('snake_case names and inline code stay as written', () => {
    expect(parseInline('uses della_linear and `model_stock` with **TIES**')).toEqual([
      { kind: 'text', text: 'uses della_linear and ' },
      { kind: 'code', text: 'model_stock' },
      { kind: 'text', text: ' with ' },
      { kind: 'strong', text: 'TIES' },
    ]);
  });
});
