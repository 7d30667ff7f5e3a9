import { HubError } from './hub-error';
import type { HubOptions } from './hub-options';

/**
 * A fetch for @huggingface/hub and our own requests: adds the token on the Hub's origin only
 * (never on a CDN a resolve redirects to), and turns HTTP failures and lost connections into a
 * `HubError` whose message says what to do.
 */
export function hubFetch(hub: HubOptions): typeof fetch {
  const base = hub.fetch ?? fetch;
  const hubOrigin = new URL(hub.hubUrl).origin;
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    if (hub.accessToken && url.origin === hubOrigin) headers.set('Authorization', `Bearer ${hub.accessToken}`);
    else headers.delete('Authorization');
    const retries = hub.rateLimit?.retries ?? 3;
    const maxWait = hub.rateLimit?.maxWaitSeconds ?? 60;
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await base(url, { ...init, headers });
      } catch (error) {
        throw networkError(error, url, init?.signal);
      }
      if (response.status === 429) {
        // The Hub says how long to wait (Retry-After); without it, 1, 2, 4… seconds.
        const wait = retryAfterSeconds(response.headers.get('Retry-After')) ?? 2 ** attempt;
        if (attempt < retries && wait <= maxWait) {
          await response.body?.cancel();
          hub.rateLimit?.onWait?.({ seconds: wait, attempt: attempt + 1, retries, url: url.href });
          await sleep(wait * 1000, init?.signal ?? undefined);
          if (init?.signal?.aborted) throw networkError(new Error('aborted'), url, init.signal);
          waited += wait;
          continue;
        }
        throw await responseError(response, url, hub.hubUrl, { tries: attempt + 1, waited });
      }
      if (response.status >= 400 && response.status !== 416) throw await responseError(response, url, hub.hubUrl);
      return response;
    }
  };
}

/** Retry-After as seconds: a number of seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export function networkError(error: unknown, url: URL, signal?: AbortSignal | null): HubError {
  if (signal?.aborted) return new HubError('aborted', 'stopped', { url: url.href });
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (error as Error).message;
  return new HubError('network', `The connection to ${url.host} was lost (${why}). Check the network; a partial download is kept and resumes where it stopped.`, {
    url: url.href,
  });
}

/** What a Hub URL points at, for messages: the repo, and the revision and file of a resolve URL. */
function describeUrl(url: URL): { repo: string; revision?: string; file?: string } {
  const api = /^\/api\/models\/([^/]+\/[^/]+)(?:\/(?:revision|tree)\/([^/]+))?/.exec(url.pathname);
  if (api) return { repo: api[1]!, ...(api[2] ? { revision: decodeURIComponent(api[2]) } : {}) };
  const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  if (resolve) return { repo: resolve[1]!, revision: decodeURIComponent(resolve[2]!), file: decodeURIComponent(resolve[3]!) };
  return { repo: url.pathname.slice(1) };
}

async function responseError(response: Response, url: URL, hubUrl: string, rateLimited = { tries: 1, waited: 0 }): Promise<HubError> {
  const code = response.headers.get('X-Error-Code') ?? '';
  const serverMessage = response.headers.get('X-Error-Message') ?? (await response.text().catch(() => '')).slice(0, 300);
  const { repo, revision, file } = describeUrl(url);
  const page = `${hubUrl}/${repo}`;
  const details = { status: response.status, url: url.href };
  const login = 'add a token in Settings, set HF_TOKEN, or log in with `hf auth login`';
  if (code === 'GatedRepo' && response.status === 401) {
    return new HubError('gated', `${repo} is gated: it needs a token from an account that has accepted its terms at ${page} (${login}).`, details);
  }
  if (code === 'GatedRepo') {
    return new HubError('gated', `${repo} is gated and your account has no access yet: accept its terms at ${page}, then try again.`, details);
  }
  if (code === 'RevisionNotFound') return new HubError('not-found', `${repo} has no revision "${revision ?? '?'}".`, details);
  if (code === 'EntryNotFound') return new HubError('not-found', `${repo} has no file "${file ?? '?'}" at revision "${revision ?? '?'}".`, details);
  if (code === 'RepoNotFound' || response.status === 404) {
    return new HubError('not-found', `${repo} was not found on the Hub. Check the name; if the repo is private, ${login}.`, details);
  }
  if (response.status === 401) return new HubError('unauthorized', `The Hub refused the token (401: invalid or expired): ${login} with a valid one.`, details);
  if (response.status === 403) return new HubError('forbidden', `The Hub refused access to ${repo} (403)${serverMessage ? `: ${serverMessage}` : ''}.`, details);
  if (response.status === 429) {
    const retryAfter = retryAfterSeconds(response.headers.get('Retry-After'));
    const when = retryAfter !== undefined ? `in ${formatWait(retryAfter)}` : 'in a few minutes';
    const { tries, waited } = rateLimited;
    const still = tries > 1 ? `is still limiting requests from this address (429) after ${tries} tries over ${formatWait(waited)}` : 'is limiting requests from this address (429)';
    return new HubError('rate-limited', `The Hub ${still}. Try again ${when}; a partial download is kept and resumes where it stopped.`, {
      ...details,
      ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}),
    });
  }
  return new HubError('server', `The Hub answered ${response.status} for ${url.pathname}${serverMessage ? `: ${serverMessage}` : ''}.`, details);
}

function formatWait(seconds: number): string {
  return seconds < 120 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`;
}
