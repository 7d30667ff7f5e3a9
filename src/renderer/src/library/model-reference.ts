import type { ModelSummary } from '../../../shared/contract';

/**
 * The library entry a recipe's model string stands for: the one whose `reference` it is (what the
 * editor writes), else one whose name or folder it is (a recipe written by hand, the demo's names).
 */
export function libraryEntry(library: readonly ModelSummary[], model: string): ModelSummary | undefined {
  if (!model) return undefined;
  return library.find((m) => m.reference === model) ?? library.find((m) => m.name === model || m.path === model || m.id === model);
}

/** Whether two recipe model strings name the same model (the same text, or the same library entry). */
export function sameModel(library: readonly ModelSummary[], a: string, b: string): boolean {
  if (a === b) return true;
  const entry = libraryEntry(library, a);
  return !!entry && entry === libraryEntry(library, b);
}

/** What to show for a recipe's model string: the library's name for it, else the string itself; "model + LoRA adapter" for `model+adapter`. */
export function modelLabel(library: readonly ModelSummary[], model: string): string {
  const { base, lora } = splitLora(model);
  const name = (ref: string) => libraryEntry(library, ref)?.name ?? ref;
  return lora ? `${name(base)} + LoRA ${name(lora)}` : name(model);
}

/** A recipe's model string as mergekit reads it, `model[+adapter]`: the model, and the LoRA adapter applied to it if any. */
export function splitLora(model: string): { base: string; lora?: string } {
  const parts = model.split('+');
  return parts.length === 2 && parts[0] && parts[1] ? { base: parts[0], lora: parts[1] } : { base: model };
}

/** The model string for `base` with the adapter `lora` applied (`base+lora`), or `base` alone. */
export function withLora(base: string, lora?: string): string {
  return lora ? `${base}+${lora}` : base;
}

/**
 * A library entry's name in a list of them, told apart from entries of the same name: two revisions
 * of a Hub repo by their commit, two folders of one name by their path.
 */
export function entryLabel(library: readonly ModelSummary[], entry: ModelSummary): string {
  if (!library.some((m) => m.name === entry.name && m.id !== entry.id)) return entry.name;
  return entry.revision ? `${entry.name} @ ${entry.revision.slice(0, 7)}` : `${entry.name} (${entry.path})`;
}
