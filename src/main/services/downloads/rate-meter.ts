/** Bytes per second over a sliding window of (time, total bytes) samples. */
export class RateMeter {
  private samples: { time: number; bytes: number }[] = [];

  constructor(
    private readonly windowMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records the running total of bytes received. */
  record(totalBytes: number): void {
    const time = this.now();
    this.samples.push({ time, bytes: totalBytes });
    while (this.samples.length > 2 && this.samples[0]!.time < time - this.windowMs) this.samples.shift();
  }

  reset(): void {
    this.samples = [];
  }

  bytesPerSecond(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.time - first.time < 100) return 0;
    return Math.max(0, ((last.bytes - first.bytes) * 1000) / (last.time - first.time));
  }
}

/** Seconds to receive `remaining` bytes at `rate`; undefined when the rate is unknown. */
export function etaSeconds(remaining: number, rate: number): number | undefined {
  if (remaining <= 0) return 0;
  return rate > 0 ? remaining / rate : undefined;
}
