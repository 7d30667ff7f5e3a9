import * as v from 'valibot';
import { jobFileSchema, type JobFile } from '../../shared/job';
import { EngineError } from '../engine/errors';

/** Reads and validates a job file's text; errors name the file and the field. */
export function parseJobFile(text: string, file: string): JobFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new EngineError(`${file}: not valid JSON (${(error as Error).message})`, { file });
  }
  const result = v.safeParse(jobFileSchema, json);
  if (!result.success) {
    const issue = result.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    throw new EngineError(`${file}: ${path ? `${path}: ` : ''}${issue.message}`, { file, key: path });
  }
  return result.output;
}
