/** Where the Hub is and how to reach it: composed into every function that talks to it. */
export interface HubOptions {
  /** The Hub's origin. Default: `HF_ENDPOINT`, else https://huggingface.co. */
  hubUrl: string;
  /** Bearer token, sent to the Hub's origin only; never logged. */
  accessToken?: string;
  /** A custom fetch (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
  /** How a 429 (rate limit) is waited out before it becomes an error. */
  rateLimit?: RateLimitPolicy;
}

export interface RateLimitPolicy {
  /** Requests sent again after a 429. Default 3. */
  retries?: number;
  /** The longest Retry-After waited out; a longer one is an error at once, saying when to try again. Default 60 s. */
  maxWaitSeconds?: number;
  /** Told before each wait, for a notice in the UI. */
  onWait?: (wait: { seconds: number; attempt: number; retries: number; url: string }) => void;
}

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** The Hub origin huggingface_hub uses: `HF_ENDPOINT`, else huggingface.co. */
export function hubUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return (env['HF_ENDPOINT'] || DEFAULT_HUB_URL).replace(/\/+$/, '');
}
