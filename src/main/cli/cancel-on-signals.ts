/**
 * An AbortController that SIGINT or SIGTERM aborts: the engine's cancel from a terminal or the app
 * (the merge's hidden folder is removed). SIGHUP is left to its default action on purpose: the engine
 * ends where it stands and keeps what it wrote (journaled shards, for `--resume`), as after a kill.
 * The app sends it when it quits; a closed terminal sends it too.
 */
export function cancelOnSignals(): AbortController {
  const controller = new AbortController();
  const cancel = () => controller.abort();
  process.once('SIGINT', cancel);
  process.once('SIGTERM', cancel);
  return controller;
}
