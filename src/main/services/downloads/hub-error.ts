import type { DownloadErrorKind } from '../../../shared/library-contract';

/** What went wrong talking to the Hub or writing a download, in words a user can act on (the contract's kinds). */
export type HubErrorKind = DownloadErrorKind;

export class HubError extends Error {
  constructor(
    readonly kind: HubErrorKind,
    message: string,
    readonly details: { status?: number; url?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'HubError';
  }
}

/** Transient failures a download retries by itself (from its partial file). */
export function isTransient(error: unknown): boolean {
  return error instanceof HubError && (error.kind === 'network' || error.kind === 'server');
}
