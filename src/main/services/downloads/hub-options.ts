/** Where the Hub is and how to reach it: composed into every function that talks to it. */
export interface HubOptions {
  /** The Hub's origin. Default: `HF_ENDPOINT`, else https://huggingface.co. */
  hubUrl: string;
  /** Bearer token, sent to the Hub's origin only; never logged. */
  accessToken?: string;
  /** A custom fetch (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
}

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** The Hub origin huggingface_hub uses: `HF_ENDPOINT`, else huggingface.co. */
export function hubUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return (env['HF_ENDPOINT'] || DEFAULT_HUB_URL).replace(/\/+$/, '');
}
