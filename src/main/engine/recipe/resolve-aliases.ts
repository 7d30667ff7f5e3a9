import { isAlias, isMap, isScalar, isSeq, Pair, YAMLMap, YAMLSeq, type Document, type Node } from 'yaml';

/** The most nodes a document may grow to once its aliases are expanded (a few thousand in real recipes). */
export const MAX_EXPANDED_NODES = 100_000;

/** Why a document's aliases cannot be expanded, at the node that shows it. */
export class AliasProblem extends Error {
  constructor(
    message: string,
    readonly node: Node,
  ) {
    super(message);
  }
}

/**
 * The document's tree as PyYAML (mergekit's loader) reads it: every alias (`*name`) replaced by the
 * node it names, and every merge key (`<<: *common`, or a list of them) replaced by the pairs it
 * brings, the map's own keys and then the earlier sources winning. Nodes keep their source ranges,
 * so problems still point at the recipe's text. A document that would grow past
 * MAX_EXPANDED_NODES (an alias bomb), or an alias inside the node it names, is an AliasProblem.
 */
export function resolveAliases(doc: Document.Parsed, root: Node): Node {
  const done = new Map<Node, { node: Node; size: number }>();
  const open = new Set<Node>();
  const visit = (node: Node): { node: Node; size: number } => {
    const seen = done.get(node);
    if (seen) return seen;
    if (open.has(node)) throw new AliasProblem('an alias refers to a node that contains it', node);
    open.add(node);
    const result = isAlias(node) ? visitAlias(node) : isMap(node) ? visitMap(node as YAMLMap<Node, Node>) : isSeq(node) ? visitSeq(node as YAMLSeq<Node>) : { node, size: 1 };
    open.delete(node);
    if (result.size > MAX_EXPANDED_NODES) throw new AliasProblem(`its aliases expand it to more than ${MAX_EXPANDED_NODES.toLocaleString('en-US')} values`, node);
    done.set(node, result);
    return result;
  };
  const visitAlias = (alias: Node): { node: Node; size: number } => {
    const target = (alias as unknown as { resolve(doc: Document.Parsed): Node | undefined }).resolve(doc);
    if (!target) throw new AliasProblem(`the alias ${String((alias as unknown as { source: string }).source)} names no anchor`, alias);
    return visit(target);
  };
  const visitSeq = (seq: YAMLSeq<Node>): { node: Node; size: number } => {
    let size = 1;
    const items = seq.items.map((item) => {
      const v = visit(item);
      size += v.size;
      return v.node;
    });
    const out = new YAMLSeq<Node>();
    Object.assign(out, seq, { items });
    return { node: out, size };
  };
  const visitMap = (map: YAMLMap<Node, Node>): { node: Node; size: number } => {
    const own: Pair<Node, Node>[] = [];
    const merged: Pair<Node, Node>[] = [];
    let size = 1;
    for (const pair of map.items) {
      if (isMergeKey(pair.key)) {
        // Counted whole, though keys written twice are kept once: the cap errs on the safe side.
        const sources = visit(pair.value!);
        size += sources.size;
        for (const source of mergeSources(sources.node, pair.value!)) merged.push(...source.items);
        continue;
      }
      const value = pair.value ? visit(pair.value) : undefined;
      size += 1 + (value?.size ?? 0);
      own.push(new Pair(pair.key, value?.node ?? null) as Pair<Node, Node>);
    }
    const keys = new Set(own.map((p) => keyOf(p.key)));
    for (const pair of merged) {
      const key = keyOf(pair.key);
      if (keys.has(key)) continue;
      keys.add(key);
      own.push(pair);
    }
    const out = new YAMLMap<Node, Node>();
    Object.assign(out, map, { items: own });
    return { node: out, size };
  };
  return visit(root).node;
}

function isMergeKey(key: unknown): boolean {
  return isScalar(key) && (typeof key.value === 'symbol' || (key.value === '<<' && key.type === 'PLAIN'));
}

function keyOf(key: unknown): string {
  return isScalar(key) ? String(key.value) : JSON.stringify(key);
}

/** The maps a merge key brings: one map, or a list of maps (earlier ones first). */
function mergeSources(value: Node, at: Node): YAMLMap<Node, Node>[] {
  if (isMap(value)) return [value as YAMLMap<Node, Node>];
  if (isSeq(value) && value.items.every((item) => isMap(item))) return value.items as YAMLMap<Node, Node>[];
  throw new AliasProblem('a merge key ("<<") must bring a mapping or a list of mappings', at);
}
