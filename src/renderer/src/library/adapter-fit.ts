import type { ModelSummary } from '../../../shared/contract';

/** A path or id as written, with `\` as `/` and no trailing `/`. */
function normalized(text: string): string {
  return text.trim().replace(/\\/g, '/').replace(/\/+$/, '');
}

/** The last part of a path ("llama-base" for "models/llama-base/"). */
function lastPart(text: string): string {
  const parts = normalized(text).split('/');
  return parts[parts.length - 1] ?? '';
}

/** A Hub repo id, "org/name" (a revision after "@" is dropped), else undefined. */
function hubId(text: string): string | undefined {
  const id = normalized(text).replace(/@[^/@]*$/, '');
  return /^[\w.-]+\/[\w.-]+$/.test(id) && !id.startsWith('.') ? id.toLowerCase() : undefined;
}

/**
 * Whether a LoRA adapter was made for a model: its `base_model_name_or_path` (`baseModel`) names that
 * model. `model` is the recipe's model string (without a `+adapter`), `entry` its library entry if any.
 * A Hub cache model matches by repo id (the Hub ignores case); a folder by its path or its folder name
 * (an adapter trained on "…/models/llama-base" or "org/llama-base" fits a folder named llama-base);
 * a string the library does not know, as a Hub id ("org/name[@rev]") by the same id, else as a path.
 */
export function adapterMadeFor(baseModel: string | undefined, model: string, entry?: ModelSummary): boolean {
  if (!baseModel?.trim() || !model.trim()) return false;
  const wanted = normalized(baseModel);
  const wantedId = hubId(wanted);
  if (entry?.source === 'hf-cache') return (!!wantedId && wantedId === hubId(entry.repoId ?? entry.name)) || normalized(entry.path) === wanted;
  if (entry) return normalized(entry.path) === wanted || lastPart(entry.path) === lastPart(wanted);
  const id = hubId(model);
  if (id) return id === wantedId;
  return normalized(model) === wanted || lastPart(model) === lastPart(wanted);
}

/** The adapters to offer for a model: those made for it first, then the others, each keeping the order given. */
export function adaptersFor(
  adapters: readonly ModelSummary[],
  model: string,
  entry?: ModelSummary,
): { adapter: ModelSummary; madeFor: boolean }[] {
  const marked = adapters.map((adapter) => ({ adapter, madeFor: adapterMadeFor(adapter.adapter?.baseModel, model, entry) }));
  return [...marked.filter((a) => a.madeFor), ...marked.filter((a) => !a.madeFor)];
}
