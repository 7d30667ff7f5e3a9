/** The page's localStorage, or undefined where there is none or it is refused (a locked-down browser). */
export function localStore(): Storage | undefined {
  try {
    return globalThis.localStorage ?? undefined;
  } catch {
    return undefined;
  }
}
