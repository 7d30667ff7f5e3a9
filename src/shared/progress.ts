/**
 * What the engine reports while it works, one JSON object per line on stdout with
 * `--progress=jsonl`. The desktop app, the web mode and the CLI's own bar all read these.
 */
export type ProgressEvent =
  | { type: 'stage'; stage: 'open' | 'plan' | 'merge' | 'finalize'; message: string }
  | {
      type: 'tensor';
      /** 1-based index of the tensor just finished. */
      index: number;
      total: number;
      name: string;
      bytesRead: number;
      bytesWritten: number;
      totalBytesToWrite: number;
      /** Bytes read and written per second so far. */
      rate: number;
      etaSeconds: number;
    }
  | {
      type: 'device';
      /** Where the merge arithmetic runs: `--device` as resolved on this machine. */
      kind: 'cpu' | 'gpu';
      /** The backend and adapter: "GPU: NVIDIA GeForce RTX 4090 (WebGPU, vulkan)", "CPU: WebAssembly SIMD, 7 worker threads". */
      description: string;
      /** One line for a log: the choice and why. */
      message: string;
    }
  | { type: 'warning'; message: string }
  | { type: 'done'; outDir: string; seconds: number; bytesWritten: number; peakRssBytes: number }
  | { type: 'error'; message: string; code: string };

/** Exit codes of the `alloy` CLI; documented in README.md. */
export const EXIT_CODES = {
  ok: 0,
  /** The merge itself failed: bad model files, I/O errors, a method's error. */
  failed: 1,
  /** The command line or the recipe is wrong: nothing was read or written. */
  usage: 2,
  /** Cancelled by the user (SIGINT/SIGTERM or the app's cancel). */
  cancelled: 130,
} as const;
