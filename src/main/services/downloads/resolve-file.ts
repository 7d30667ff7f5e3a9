import { hubFetch } from './hub-fetch';
import type { HubOptions } from './hub-options';

const MAX_REDIRECTS = 5;

export interface ResolveRequest {
  hub: HubOptions;
  repo: string;
  /** A commit (as downloads use) or a branch. */
  revision: string;
  path: string;
  /** First byte wanted; the rest of the file from there unless `end` is given. */
  start?: number;
  /** Last byte wanted, inclusive. */
  end?: number;
  signal?: AbortSignal;
}

export function resolveUrl(hubUrl: string, repo: string, revision: string, path: string): string {
  return `${hubUrl}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * GETs a file (or a byte range of it) from `/{repo}/resolve/{revision}/{path}`, following the
 * Hub's redirects to its CDN by hand so the token never leaves the Hub's origin.
 */
export async function fetchResolvedFile(request: ResolveRequest): Promise<Response> {
  const fetch = hubFetch(request.hub);
  let url = resolveUrl(request.hub.hubUrl, request.repo, request.revision, request.path);
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
  if (request.start || request.end !== undefined) headers['Range'] = `bytes=${request.start ?? 0}-${request.end ?? ''}`;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const response = await fetch(url, { headers, redirect: 'manual', ...(request.signal ? { signal: request.signal } : {}) });
    const location = response.headers.get('Location');
    if (response.status < 300 || response.status >= 400 || !location) return response;
    await response.body?.cancel();
    url = new URL(location, url).href;
  }
  throw new Error(`${request.repo}/${request.path}: more than ${MAX_REDIRECTS} redirects`);
}
