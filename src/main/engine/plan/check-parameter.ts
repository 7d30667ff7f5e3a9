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
 * A parameter's value as the method declares it: a number or a boolean. A wrong type or a non-finite
 * number is a recipe error at the value's file:line:col, naming the model and the tensor it was
 * resolved for (a gradient or a filter can go wrong for one tensor only), as is a fraction where
 * mergekit takes an int and a value below one mergekit fails on. A number outside the declared range
 * is only warned about: mergekit takes it as it is (a density above 1 prunes nothing,
 * a slerp t below 0 extrapolates), and the same recipe must give the same model.
 */
export function checkParameter(
  decl: ParameterDecl,
  resolved: ResolvedParameter | undefined,
  where: { tensor: string; model?: string },
  warn: (message: string) => void,
): ParamValue | undefined {
  if (resolved === undefined) return undefined;
  const subject = `parameter "${decl.name}"${where.model ? ` of ${where.model}` : ''} for tensor "${where.tensor}"`;
  const value = asDeclared(decl, resolved.value);
  const problem = typeProblem(decl, value);
  if (!problem) {
    const range = rangeProblem(decl, value as ParamValue);
    if (range) warn(`${at(resolved.position)}parameter "${decl.name}"${where.model ? ` of ${where.model}` : ''} is ${JSON.stringify(resolved.value)}, ${range}; mergekit uses it as it is, and so does Alloy`);
    return value as ParamValue;
  }
  const message = `${subject} is ${JSON.stringify(resolved.value)}: ${problem}`;
  if (!resolved.position) throw new EngineError(message, { key: decl.name, tensor: where.tensor });
  const { file, line, column } = resolved.position;
  throw new RecipeError([{ file, line, column, key: decl.name, message }]);
}

function at(position: SourcePosition | undefined): string {
  return position ? `${position.file}:${position.line}:${position.column}: ` : '';
}

/**
 * Python's view of numbers and booleans, which mergekit's methods see: a boolean parameter given a
 * number (`normalize: 1`, or a gradient of booleans, interpolated) is its truth (any number but 0),
 * a number given a boolean is 0 or 1.
 */
function asDeclared(decl: ParameterDecl, value: SettingValue): SettingValue {
  if (decl.type === 'boolean' && typeof value === 'number') return value !== 0;
  if (decl.type !== 'boolean' && typeof value === 'boolean') return Number(value);
  return value;
}

function typeProblem(decl: ParameterDecl, value: SettingValue): string | undefined {
  if (decl.type === 'boolean') return typeof value === 'boolean' ? undefined : 'it must be true or false';
  if (typeof value !== 'number') return 'it must be a number';
  if (!Number.isFinite(value)) return 'it must be a finite number';
  if (decl.integer && !Number.isInteger(value)) return 'it must be a whole number (mergekit takes an int here and refuses a fraction)';
  if (decl.refusedBelow !== undefined && value < decl.refusedBelow) return `it must be at least ${decl.refusedBelow} (mergekit fails on it: torch raises)`;
  return undefined;
}

function rangeProblem(decl: ParameterDecl, value: ParamValue): string | undefined {
  if (typeof value !== 'number') return undefined;
  if (decl.min !== undefined && value < decl.min) return `below the ${decl.min} the method is meant for`;
  if (decl.max !== undefined && value > decl.max) return `above the ${decl.max} the method is meant for`;
  return undefined;
}
