/** An AbortController that SIGINT or SIGTERM aborts: the engine's cancel from a terminal or the app. */
export function cancelOnSignals(): AbortController {
  const controller = new AbortController();
  const cancel = () => controller.abort();
  process.once('SIGINT', cancel);
  process.once('SIGTERM', cancel);
  return controller;
}
