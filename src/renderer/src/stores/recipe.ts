import { defineStore } from 'pinia';
import { computed, ref, shallowRef } from 'vue';
import type { AlloyApi, MethodInfo, RecipeProblem } from '../../../shared/contract';
import { localStore } from '../local-storage';
import { dropUndeclared } from '../recipe/method-switch';
import type { RecipeGradientResult, RecipeParseResult } from '../../../shared/studio-contract';
import { appendAt, documentAt, fieldOf, isEditable, offsetOf, parseRecipeYaml, pathAtOffset, readAt, recipeYamlText, writeAt, type RecipeDocs, type YamlPath } from '../recipe/recipe-yaml';

const TOP_LEVEL_FIELDS = ['merge_method', 'base_model', 'dtype', 'out_dtype', 'tokenizer_source', 'chat_template', 'models', 'slices', 'name'];
const CHECK_DELAY_MS = 250;
/** localStorage key of the recipe being edited (and the text it started from), kept across reloads. */
export const RECIPE_STORAGE_KEY = 'alloy.recipe';

export interface PlacedProblem extends RecipeProblem {
  /** The form field it belongs to (`parameters.t`, `models.1.model`), '' for the recipe as a whole. */
  field: string;
  document: number;
}

/**
 * The recipe being edited: its YAML text and documents, which document the form shows, and the
 * engine's verdict on it (stages, problems, per-layer parameter values), refreshed after each edit.
 */
export const useRecipeStore = defineStore('recipe', () => {
  const text = ref('');
  /** The text as last started (the demo, New recipe): a text that differs from it is the user's work. */
  const baseline = ref('');
  const dirty = computed(() => text.value !== baseline.value);
  const docs = shallowRef<RecipeDocs>([]);
  const yamlErrors = ref<string[]>([]);
  const documentIndex = ref(0);
  /** Bumped on every change: the documents are edited in place. */
  const revision = ref(0);
  const parse = ref<RecipeParseResult>();
  const gradient = ref<RecipeGradientResult>();
  const checking = ref(false);
  const requestError = ref('');
  /** A check is due (an edit in the last 250 ms): the verdict shown is for an older text. */
  const timerPending = ref(false);
  let api: AlloyApi | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sequence = 0;

  const current = computed(() => {
    void revision.value;
    return docs.value[documentIndex.value];
  });
  const editable = computed(() => isEditable(current.value));

  function attach(next: AlloyApi): void {
    api = next;
    if (text.value) changed();
  }

  /** Replaces the recipe with a fresh one (the demo, a new recipe): what the user has not changed yet. */
  function start(next: string): void {
    baseline.value = next;
    setText(next);
  }

  function setText(next: string): void {
    text.value = next;
    save();
    const parsed = parseRecipeYaml(next);
    docs.value = parsed.docs;
    yamlErrors.value = parsed.errors;
    if (documentIndex.value >= parsed.docs.length) documentIndex.value = 0;
    changed();
  }

  function selectDocument(index: number): void {
    documentIndex.value = index;
    changed();
  }

  function read(path: YamlPath): unknown {
    void revision.value;
    return readAt(current.value, path);
  }

  /** Writes a form edit into the shown document; false (nothing written) while it does not parse. */
  function edit(path: YamlPath, value: unknown): boolean {
    if (!editable.value) return false;
    writeAt(current.value!, path, value);
    afterEdit();
    return true;
  }

  function append(path: YamlPath, value: unknown): boolean {
    if (!editable.value) return false;
    appendAt(current.value!, path, value);
    afterEdit();
    return true;
  }

  /**
   * Switches the shown document to `method` and drops what it does not take (parameters it does not
   * declare, base_model where it has none); the names removed, or undefined (nothing written) while
   * the YAML does not parse.
   */
  function switchMethod(method: MethodInfo): string[] | undefined {
    if (!editable.value) return undefined;
    writeAt(current.value!, ['merge_method'], method.name);
    const removed = dropUndeclared(current.value!, method);
    afterEdit();
    return removed;
  }

  function afterEdit(): void {
    text.value = recipeYamlText(docs.value);
    save();
    changed();
  }

  /** Keeps the text (and what it started from) for the next load of the page. */
  function save(): void {
    try {
      localStore()?.setItem(RECIPE_STORAGE_KEY, JSON.stringify({ text: text.value, baseline: baseline.value }));
    } catch {
      // Storage full or refused: the recipe still lives for this page.
    }
  }

  function restore(): void {
    try {
      const saved = JSON.parse(localStore()?.getItem(RECIPE_STORAGE_KEY) ?? 'null') as { text?: unknown; baseline?: unknown } | null;
      if (typeof saved?.text !== 'string' || !saved.text) return;
      baseline.value = typeof saved.baseline === 'string' ? saved.baseline : '';
      setText(saved.text);
    } catch {
      // Nothing kept, or not ours: start from the demo.
    }
  }

  function changed(): void {
    revision.value++;
    if (timer) clearTimeout(timer);
    timerPending.value = true;
    timer = setTimeout(() => {
      timerPending.value = false;
      void check();
    }, CHECK_DELAY_MS);
  }

  /** Asks the engine about the text as it is now; answers to older texts are dropped. */
  async function check(): Promise<void> {
    if (!api) return;
    const mine = ++sequence;
    const recipe = text.value;
    checking.value = true;
    try {
      const [parsed, values] = await Promise.all([
        api.invoke('recipe.parse', { recipe }),
        api.invoke('recipe.gradient', { recipe, document: documentIndex.value }),
      ]);
      if (mine !== sequence) return;
      parse.value = parsed;
      gradient.value = values;
      requestError.value = '';
    } catch (error) {
      if (mine === sequence) requestError.value = (error as Error).message;
    } finally {
      if (mine === sequence) checking.value = false;
    }
  }

  /** Runs the pending check now (tests, and the plan button, wait on it). */
  async function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerPending.value = false;
    await check();
  }

  const problems = computed<PlacedProblem[]>(() => {
    const result = parse.value;
    if (result && !result.ok) return result.problems.map((p) => place(p));
    // Every problem the planner finds in the shown document: at the field it names or holds, else
    // for the recipe as a whole (a missing required parameter, a model not found).
    const planned = gradient.value && !gradient.value.ok ? gradient.value.problems : [];
    return planned.map((p) => place(p));
  });

  function place(problem: RecipeProblem): PlacedProblem {
    if (!problem.line) return { ...problem, field: fieldForKey(problem.key), document: documentIndex.value };
    const offset = offsetOf(text.value, problem.line, problem.column ?? 1);
    const document = documentAt(docs.value, offset);
    const doc = docs.value[document];
    const field = doc ? fieldOf(pathAtOffset(doc, offset)) : '';
    return { ...problem, field: field || fieldForKey(problem.key), document };
  }

  /** Whether the engine has answered the text as it is now and found nothing wrong with it. */
  const valid = computed(() => !checking.value && !timerPending.value && !requestError.value && yamlErrors.value.length === 0 && !!parse.value?.ok && !!gradient.value?.ok && problems.value.length === 0);

  /** The engine's messages for one field of the shown document. */
  function problemsAt(field: string): string[] {
    return problems.value.filter((p) => p.document === documentIndex.value && p.field === field).map((p) => p.message);
  }

  restore();

  return { text, baseline, dirty, start, docs, yamlErrors, documentIndex, revision, parse, gradient, checking, requestError, current, editable, problems, valid, attach, setText, selectDocument, read, edit, append, switchMethod, check, flush, problemsAt };
});

function fieldForKey(key: string | undefined): string {
  return key && TOP_LEVEL_FIELDS.includes(key) ? key : '';
}
