import { EngineError } from '../errors';

/** JSON.parse, whose failure names the file, line and column (V8 reports only a character position). */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const reason = (error as Error).message;
    const { line, column } = lineAndColumn(text, errorPosition(reason, text));
    throw new EngineError(`${file}:${line}:${column}: not valid JSON (${reason})`, { file, line, column });
  }
}

/** The character V8 stopped at: "… at position N", else the end of the text ("Unexpected end of JSON input"). */
function errorPosition(reason: string, text: string): number {
  const match = /at position (\d+)/.exec(reason);
  return match ? Number(match[1]) : text.length;
}

function lineAndColumn(text: string, position: number): { line: number; column: number } {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  return { line, column: position - before.lastIndexOf('\n') };
}
