import * as v from 'valibot';
import { analysisJobFileSchema, jobFileSchema, type AnalysisJobFile, type JobFile } from '../../shared/job';
import { EngineError } from '../engine/errors';

/** Reads and validates a job file's text; errors name the file and the field. */
export function parseJobFile(text: string, file: string): JobFile {
  return parseAgainst(jobFileSchema, text, file);
}

/** Reads and validates an analysis job file (`kind: "analysis"`); errors name the file and the field. */
export function parseAnalysisJobFile(text: string, file: string): AnalysisJobFile {
  return parseAgainst(analysisJobFileSchema, text, file);
}

/** Whether a job file's text asks for an analysis rather than a merge. */
export function isAnalysisJob(text: string): boolean {
  try {
    const json: unknown = JSON.parse(text);
    return typeof json === 'object' && json !== null && (json as { kind?: unknown }).kind === 'analysis';
  } catch {
    return false;
  }
}

function parseAgainst<S extends v.GenericSchema>(schema: S, text: string, file: string): v.InferOutput<S> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new EngineError(`${file}: not valid JSON (${(error as Error).message})`, { file });
  }
  const result = v.safeParse(schema, json);
  if (!result.success) {
    const issue = result.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    throw new EngineError(`${file}: ${path ? `${path}: ` : ''}${issue.message}`, { file, key: path });
  }
  return result.output;
}
