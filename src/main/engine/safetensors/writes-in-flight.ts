/**
 * Writes going on at once, at most `limit` of them: `add` waits while the limit is reached, and the
 * first failure is kept and thrown by the next `add` or `drain` (a later write's failure is the
 * same disk's, and the first names what went wrong first).
 */
export class WritesInFlight {
  private readonly pending = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  /** Adds `work`; resolves once fewer than `limit` are going on. */
  async add(work: Promise<unknown>): Promise<void> {
    const p = work.then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= { error };
      },
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    while (this.pending.size >= this.limit) await Promise.race(this.pending);
    this.check();
  }

  /** Throws the first failure, if any. */
  check(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every write, then throws the first failure, if any. */
  async drain(): Promise<void> {
    await Promise.all(this.pending);
    this.check();
  }

  /** Waits for every write, whatever became of them. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.pending);
  }
}
