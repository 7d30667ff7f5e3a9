import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { DEFAULT_SETTINGS, studioRequestSchemas, type Settings } from '../../shared/studio-contract';
import { writeFileAtomic } from './write-file-atomic';

/** The app's settings: kept in memory, and in a JSON file when the face gives one. */
export class SettingsService {
  private current: Promise<Settings> | undefined;
  /** The changes asked so far, applied one at a time in the order asked. */
  private changes: Promise<unknown> = Promise.resolve();

  constructor(private readonly file?: string) {}

  async get(): Promise<Settings> {
    this.current ??= this.load().then((saved) => ({ ...DEFAULT_SETTINGS, ...saved }));
    return { ...(await this.current) };
  }

  set(changes: Partial<Settings>): Promise<Settings> {
    const applied = this.changes.then(() => this.apply(changes));
    this.changes = applied.catch(() => undefined);
    return applied;
  }

  /** One change: in memory, then in the file (so the file ends with the last settings asked for). */
  private async apply(changes: Partial<Settings>): Promise<Settings> {
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)) as Partial<Settings>;
    const next = { ...(await this.get()), ...defined };
    this.current = Promise.resolve(next);
    if (this.file) await writeFileAtomic(this.file, JSON.stringify(next, null, 2));
    return { ...next };
  }

  private async load(): Promise<Partial<Settings>> {
    if (!this.file) return {};
    const text = await readFile(this.file, 'utf8').catch(() => '');
    try {
      const parsed = v.safeParse(studioRequestSchemas['settings.set'], text ? JSON.parse(text) : {});
      return parsed.success ? parsed.output : {};
    } catch {
      return {};
    }
  }
}
