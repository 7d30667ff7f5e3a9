/** Where a problem was found, so the message can point at it. */
export interface ErrorLocation {
  file?: string;
  line?: number;
  column?: number;
  key?: string;
  tensor?: string;
}

/** Every error the engine raises on purpose: its message is meant for the user as it is. */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly location: ErrorLocation = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}
