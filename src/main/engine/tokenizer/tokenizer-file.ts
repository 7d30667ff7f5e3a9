import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors';
import { parseJson } from '../model/parse-json';

export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedToken[];
  model?: { type?: string; vocab?: Record<string, number> | [string, number][]; merges?: (string | string[])[] };
  [key: string]: unknown;
}

/**
 * A fast tokenizer (tokenizer.json) as transformers sees it: `vocab()` is `get_vocab()` (the model's
 * tokens and the added ones), `add()` is `add_tokens()` (a new token takes the next id).
 */
export class TokenizerFile {
  private constructor(
    readonly dir: string,
    private readonly json: TokenizerJson,
  ) {}

  static async read(dir: string): Promise<TokenizerFile | undefined> {
    const file = join(dir, 'tokenizer.json');
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const json = parseJson(text, file) as TokenizerJson;
    if (typeof json !== 'object' || json === null || typeof json.model !== 'object' || json.model === null) {
      throw new EngineError(`${file}: not a tokenizer.json (no "model" object)`, { file, key: 'model' });
    }
    return new TokenizerFile(dir, json);
  }

  clone(): TokenizerFile {
    return new TokenizerFile(this.dir, structuredClone(this.json));
  }

  get added(): AddedToken[] {
    return this.json.added_tokens ?? [];
  }

  /** token → id, the model's tokens first in id order, then the added tokens. */
  vocab(): Map<string, number> {
    const vocab = new Map<string, number>();
    const model = this.json.model?.vocab;
    if (Array.isArray(model)) model.forEach(([piece], id) => vocab.set(piece, id));
    else if (model) for (const [token, id] of Object.entries(model).sort((a, b) => a[1] - b[1])) vocab.set(token, id);
    for (const token of this.added) vocab.set(token.content, token.id);
    return vocab;
  }

  /** mergekit's get_stripped_tokenizer: drops tokens whose ids are at or past the model's embedding rows. */
  strip(rows: number): TokenizerFile {
    const unused = [...this.vocab()].filter(([, id]) => id >= rows).map(([token]) => token);
    if (unused.length === 0) return this;
    const model = this.json.model!;
    if (model.type !== 'BPE' || Array.isArray(model.vocab)) {
      throw new EngineError(`${join(this.dir, 'tokenizer.json')}: has ${unused.length} tokens past the ${rows} embedding rows, and only a BPE tokenizer can be stripped of them (as in mergekit)`, { file: this.dir });
    }
    const out = this.clone();
    const gone = new Set(unused);
    out.json.added_tokens = this.added.filter((t) => t.id < rows);
    out.json.model!.vocab = Object.fromEntries(Object.entries(model.vocab ?? {}).filter(([token]) => !gone.has(token)));
    out.json.model!.merges = (model.merges ?? []).filter((m) => !(typeof m === 'string' ? m.split(' ') : m).some((t) => gone.has(t)));
    return out;
  }

  /** transformers' add_tokens for one token: nothing if present, else the next id. */
  add(content: string, info?: Omit<AddedToken, 'id' | 'content'>): void {
    const vocab = this.vocab();
    if (vocab.has(content)) return;
    const entry: AddedToken = { id: vocab.size, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false, ...info };
    this.json.added_tokens = [...this.added, entry];
  }

  text(): string {
    return JSON.stringify(this.json, null, 2) + '\n';
  }
}
