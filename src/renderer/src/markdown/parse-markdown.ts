/**
 * The Markdown a model card uses (mergekit's README.md: YAML front matter, headings, paragraphs,
 * bullet lists, fenced code, links, bold, italics, inline code) as plain data, drawn by
 * `ModelCard.vue` with text nodes only: nothing in a card can become HTML.
 */
export type Inline =
  | { kind: 'text'; text: string }
  | { kind: 'code'; text: string }
  | { kind: 'strong'; text: string }
  | { kind: 'em'; text: string }
  | { kind: 'link'; text: string; href: string };

export type Block =
  | { kind: 'heading'; level: number; inlines: Inline[] }
  | { kind: 'paragraph'; inlines: Inline[] }
  | { kind: 'list'; items: Inline[][] }
  | { kind: 'code'; language: string; text: string };

export interface ParsedMarkdown {
  /** The YAML between leading `---` lines, as written. */
  frontMatter?: string;
  blocks: Block[];
}

const INLINE = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)\)/g;

/** Only web links are kept as links; anything else (javascript:, file:) stays text. */
const safeHref = (href: string): string | undefined => (/^https?:\/\//i.test(href) ? href : undefined);

export function parseInline(text: string): Inline[] {
  const out: Inline[] = [];
  const push = (inline: Inline) => {
    const before = out[out.length - 1];
    if (inline.kind === 'text' && before?.kind === 'text') before.text += inline.text;
    else out.push(inline);
  };
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) push({ kind: 'text', text: text.slice(last, m.index) });
    if (m[1] !== undefined) push({ kind: 'code', text: m[1] });
    else if (m[2] !== undefined) push({ kind: 'strong', text: m[2] });
    else if (m[3] !== undefined) push({ kind: 'em', text: m[3] });
    else {
      const href = safeHref(m[5]!);
      push(href ? { kind: 'link', text: m[4]!, href } : { kind: 'text', text: m[0] });
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) push({ kind: 'text', text: text.slice(last) });
  return out;
}

function splitFrontMatter(lines: string[]): { frontMatter?: string; body: string[] } {
  if (lines[0]?.trim() !== '---') return { body: lines };
  const end = lines.findIndex((l, i) => i > 0 && l.trim() === '---');
  return end < 0 ? { body: lines } : { frontMatter: lines.slice(1, end).join('\n'), body: lines.slice(end + 1) };
}

export function parseMarkdown(source: string): ParsedMarkdown {
  const { frontMatter, body } = splitFrontMatter(source.replace(/\r\n?/g, '\n').split('\n'));
  const blocks: Block[] = [];
  let paragraph: string[] = [];
  let list: Inline[][] | undefined;
  const flush = () => {
    if (paragraph.length) blocks.push({ kind: 'paragraph', inlines: parseInline(paragraph.join(' ')) });
    if (list) blocks.push({ kind: 'list', items: list });
    paragraph = [];
    list = undefined;
  };
  for (let i = 0; i < body.length; i++) {
    const line = body[i]!;
    const fence = /^\s*(```|~~~)\s*([\w+-]*)/.exec(line);
    if (fence) {
      flush();
      const end = body.findIndex((l, j) => j > i && l.trim().startsWith(fence[1]!));
      const stop = end < 0 ? body.length : end;
      blocks.push({ kind: 'code', language: fence[2] ?? '', text: body.slice(i + 1, stop).join('\n') });
      i = stop;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    const item = /^\s*[*+-]\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      blocks.push({ kind: 'heading', level: heading[1]!.length, inlines: parseInline(heading[2]!) });
    } else if (item) {
      if (paragraph.length) flush();
      (list ??= []).push(parseInline(item[1]!));
    } else if (!line.trim()) flush();
    else {
      if (list) flush();
      paragraph.push(line.trim());
    }
  }
  flush();
  return { ...(frontMatter !== undefined ? { frontMatter } : {}), blocks };
}
