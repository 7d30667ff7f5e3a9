/**
 * One writer per blob in this process: two downloads that need the same blob (two revisions of a
 * repo) take turns, and the second finds the blob already committed.
 */
export class BlobLocks {
  private readonly held = new Map<string, Promise<unknown>>();

  async run<T>(blob: string, work: () => Promise<T>): Promise<T> {
    const before = this.held.get(blob) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(work);
    this.held.set(blob, mine);
    try {
      return await mine;
    } finally {
      if (this.held.get(blob) === mine) this.held.delete(blob);
    }
  }
}
