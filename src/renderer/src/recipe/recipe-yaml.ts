import { isMap, isScalar, isSeq, parseAllDocuments, parseDocument, type Document, type Node } from 'yaml';

/**
 * The recipe as the editor holds it: the YAML documents themselves. The form reads its values out
 * of them and writes each edit back into them, so comments, key order and keys the form does not
 * know survive a round trip; the YAML pane shows the same text.
 */

export type YamlPath = (string | number)[];
export type RecipeDocs = Document.Parsed[];

const TO_STRING = { flowCollectionPadding: false, lineWidth: 0 } as const;

/** Whether the form can write into a document: it parses, and holds a mapping or nothing yet. */
export function isEditable(doc: Document | undefined): boolean {
  return !!doc && doc.errors.length === 0 && (doc.contents === null || isMap(doc.contents));
}

/** Text → documents; an empty trailing document (a closing `---`) is dropped. */
export function parseRecipeYaml(text: string): { docs: RecipeDocs; errors: string[] } {
  const parsed = parseAllDocuments(text);
  const docs = Array.isArray(parsed) && parsed.length ? parsed : [parseDocument(text)];
  while (docs.length > 1 && docs[docs.length - 1]!.contents === null) docs.pop();
  const errors = docs.flatMap((d) => d.errors.map((e) => e.message.split('\n')[0]!));
  return { docs, errors };
}

export function recipeYamlText(docs: RecipeDocs): string {
  return docs.map((d) => d.toString(TO_STRING)).join('');
}

/** A value as plain data (numbers, lists, mappings), or undefined. */
export function readAt(doc: Document | undefined, path: YamlPath): unknown {
  if (!doc) return undefined;
  const value = doc.getIn(path, false) as unknown;
  return value && typeof value === 'object' && 'toJSON' in value ? (value as { toJSON(): unknown }).toJSON() : value;
}

/** Writes a value (lists of numbers in flow style, as recipes write gradients); undefined deletes the key. */
export function writeAt(doc: Document, path: YamlPath, value: unknown): void {
  if (value === undefined || value === '') {
    if (doc.hasIn(path)) doc.deleteIn(path);
    return;
  }
  const flow = Array.isArray(value) && value.every((v) => typeof v === 'number');
  if (doc.contents === null) doc.contents = doc.createNode({}) as never;
  doc.setIn(path, doc.createNode(value, { flow }));
}

/** Appends to the list at `path`, creating it. */
export function appendAt(doc: Document, path: YamlPath, value: unknown): void {
  const list = readAt(doc, path);
  if (Array.isArray(list)) doc.addIn(path, doc.createNode(value));
  else writeAt(doc, path, [value]);
}

/** The path of the deepest node whose text holds `offset` (a key counts as its value's place). */
export function pathAtOffset(doc: Document, offset: number): YamlPath {
  const path: YamlPath = [];
  let node = doc.contents as Node | null;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => within(p.key as Node, offset) || within(p.value as Node, offset));
      if (!pair || !isScalar(pair.key)) return path;
      path.push(String(pair.key.value));
      if (within(pair.key as Node, offset)) return path;
      node = pair.value as Node;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => within(item as Node, offset));
      if (index < 0) return path;
      path.push(index);
      node = node.items[index] as Node;
    } else return path;
  }
}

function within(node: Node | null | undefined, offset: number): boolean {
  const range = node?.range;
  return !!range && offset >= range[0] && offset < Math.max(range[1], range[0] + 1);
}

/** Line and column (1-based, as the engine reports them) → offset in `text`. */
export function offsetOf(text: string, line: number, column: number): number {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf('\n', start);
    if (next < 0) return text.length;
    start = next + 1;
  }
  return start + column - 1;
}

/** The document of a stream that holds `offset`. */
export function documentAt(docs: RecipeDocs, offset: number): number {
  const index = docs.findIndex((d) => offset >= d.range[0] && offset < d.range[2]);
  return index < 0 ? docs.length - 1 : index;
}

/** The form field a YAML path belongs to: where a problem there is shown. */
export function fieldOf(path: YamlPath): string {
  const [head, a, b, c] = path;
  if (head === 'parameters' && a !== undefined) return `parameters.${a}`;
  if ((head === 'models' || head === 'slices') && typeof a === 'number') {
    if (head === 'models' && b === 'parameters' && c !== undefined) return `models.${a}.parameters.${c}`;
    if (head === 'models' && b === 'model') return `models.${a}.model`;
    return `${head}.${a}`;
  }
  return typeof head === 'string' ? head : '';
}
