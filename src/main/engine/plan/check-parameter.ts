import { EngineError } from '../errors';
import type { ParameterDecl, ParamValue } from '../methods/types';
import { RecipeError } from '../recipe/parse-recipe';
import type { SettingValue } from '../recipe/evaluate-setting';
import type { SourcePosition } from '../recipe/types';

export interface ResolvedParameter {
  value: SettingValue;
  /** Where the recipe wrote it; absent for the method's default. */
  position?: SourcePosition;
}

/**
 * A parameter's value as the method declares it: a number of the declared range, or a boolean.
 * A wrong type or a value out of range is a recipe error at the value's file:line:col, naming the
 * model and the tensor it was resolved for (a gradient or a filter can go wrong for one tensor only).
 */
export function checkParameter(decl: ParameterDecl, resolved: ResolvedParameter | undefined, where: { tensor: string; model?: string }): ParamValue | undefined {
  if (resolved === undefined) return undefined;
  const problem = parameterProblem(decl, resolved.value);
  if (!problem) return resolved.value as ParamValue;
  const subject = `parameter "${decl.name}"${where.model ? ` of ${where.model}` : ''} for tensor "${where.tensor}"`;
  const message = `${subject} is ${JSON.stringify(resolved.value)}: ${problem}`;
  if (!resolved.position) throw new EngineError(message, { key: decl.name, tensor: where.tensor });
  const { file, line, column } = resolved.position;
  throw new RecipeError([{ file, line, column, key: decl.name, message }]);
}

function parameterProblem(decl: ParameterDecl, value: SettingValue): string | undefined {
  if (decl.type === 'boolean') return typeof value === 'boolean' ? undefined : 'it must be true or false';
  if (typeof value !== 'number') return 'it must be a number';
  if (!Number.isFinite(value)) return 'it must be a finite number';
  if (decl.min !== undefined && value < decl.min) return `it must be at least ${decl.min}`;
  if (decl.max !== undefined && value > decl.max) return `it must be at most ${decl.max}`;
  return undefined;
}
