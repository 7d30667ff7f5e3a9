import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { DEFAULT_SETTINGS, studioRequestSchemas, type Settings } from '../../shared/studio-contract';
import { writeFileAtomic } from './write-file-atomic';

/** The app's settings: kept in memory, and in a JSON file when the face gives one. */
export class SettingsService {
  private current: Settings | undefined;

  constructor(private readonly file?: string) {}

  async get(): Promise<Settings> {
    this.current ??= { ...DEFAULT_SETTINGS, ...(await this.load()) };
    return { ...this.current };
  }

  async set(changes: Partial<Settings>): Promise<Settings> {
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)) as Partial<Settings>;
    this.current = { ...(await this.get()), ...defined };
    // Writes go one at a time, in the order asked: the file ends with the last settings.
    if (this.file) await writeFileAtomic(this.file, JSON.stringify(this.current, null, 2));
    return { ...this.current };
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
