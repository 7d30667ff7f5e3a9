/** The shapes a gradient can be set to in one click. */
export const GRADIENT_PRESETS = ['flat', 'ramp up', 'ramp down', 'V', 'Λ'] as const;
export type GradientPreset = (typeof GRADIENT_PRESETS)[number];

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Anchors for a preset between `low` and `high`. Keeps the current number of anchors when it has
 * at least three (five otherwise); `flat` keeps the current mean.
 */
export function presetAnchors(preset: GradientPreset, current: number[], low: number, high: number): number[] {
  const n = current.length >= 3 ? current.length : 5;
  const mean = current.length ? current.reduce((a, b) => a + b, 0) / current.length : (low + high) / 2;
  const at = (k: number) => k / (n - 1);
  const shape: Record<GradientPreset, (x: number) => number> = {
    flat: () => mean,
    'ramp up': (x) => low + (high - low) * x,
    'ramp down': (x) => high - (high - low) * x,
    V: (x) => low + (high - low) * Math.abs(2 * x - 1),
    'Λ': (x) => high - (high - low) * Math.abs(2 * x - 1),
  };
  return Array.from({ length: n }, (_, k) => round(shape[preset](at(k))));
}

/** A value typed by hand: "0.5" is a number, "1, 0.7, 0.3" a gradient; anything else is undefined. */
export function parseSettingText(text: string): number | number[] | undefined {
  const parts = text.replace(/[[\]]/g, ' ').split(/[,\s]+/).filter(Boolean);
  if (parts.length === 0) return undefined;
  const numbers = parts.map(Number);
  if (numbers.some((n) => !Number.isFinite(n))) return undefined;
  return numbers.length === 1 && !/[,[]/.test(text) ? numbers[0] : numbers;
}

export function settingText(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'number')) return value.join(', ');
  return '';
}

/** Clamps and rounds a dragged value to the parameter's range. */
export function clampAnchor(value: number, low: number | undefined, high: number | undefined): number {
  let v = value;
  if (low !== undefined) v = Math.max(low, v);
  if (high !== undefined) v = Math.min(high, v);
  return Math.round(v * 100) / 100;
}
