import type { AnalysisInfo, AnalysisMetrics } from '../../../shared/analysis';

/** One line of a chart and one column of its table: a model (and, for NearSwap, one t) over the groups. */
export interface MetricSeries {
  label: string;
  /** One value per group, in the model's order; null where not computed yet or undefined. */
  values: (number | null)[];
}

export interface MetricView {
  id: 'relative-l2' | 'cosine' | 'swap';
  title: string;
  /** What the metric is, in a sentence. */
  description: string;
  axis: string;
  format: (value: number) => string;
  /** The y axis starts at 0 (distances and shares). */
  fromZero: boolean;
  series: MetricSeries[];
}

/** One color per line, the same in a chart and its table. */
export const PALETTE = ['#3b6ef5', '#e8590c', '#2b8a3e', '#ae3ec9', '#c92a2a', '#0b7285', '#5f3dc4', '#a07a00'];

const percent = (x: number) => (x === 0 ? '0 %' : `${(100 * x).toFixed(x < 0.001 ? 4 : 2)} %`);

/**
 * The Analysis view's three metrics as chart lines and table columns, from a run's results so far:
 * relative L2 distance and cosine similarity (one line per model), NearSwap's whole-swap share (one
 * line per model and t).
 */
export function metricViews(info: AnalysisInfo, nameOf: (model: string) => string): MetricView[] {
  const byGroup = new Map(info.layers.map((l) => [l.group.index, l.metrics]));
  const column = (model: number, pick: (m: AnalysisMetrics) => number | null) =>
    info.groups.map((g) => {
      const m = byGroup.get(g.index)?.[model];
      return m ? pick(m) : null;
    });
  const models = info.models.map((model, i) => ({ i, label: nameOf(model) }));
  const several = info.t.length > 1;
  return [
    {
      id: 'relative-l2',
      title: 'Relative L2 distance',
      description: '‖W − W_base‖ / ‖W_base‖ over each layer\'s weights: 0 is the base itself.',
      axis: 'relative L2',
      format: (x) => x.toPrecision(4),
      fromZero: true,
      series: models.map(({ i, label }) => ({ label, values: column(i, (m) => m.relativeL2) })),
    },
    {
      id: 'cosine',
      title: 'Cosine similarity',
      description: 'The angle between each layer\'s weights and the base\'s, as a cosine: 1 is the same direction.',
      axis: 'cosine',
      format: (x) => x.toFixed(6),
      fromZero: false,
      series: models.map(({ i, label }) => ({ label, values: column(i, (m) => m.cosine) })),
    },
    ...(info.t.length
      ? [
          {
            id: 'swap' as const,
            title: 'NearSwap: weights swapped whole',
            description: `The share of each layer's weights NearSwap at t = ${info.t.join(', ')} takes whole from the model (|W − W_base| ≤ t, as the method rounds it).`,
            axis: 'swapped',
            format: percent,
            fromZero: true,
            series: models.flatMap(({ i, label }) => info.t.map((t, k) => ({ label: several ? `${label} · t=${t}` : label, values: column(i, (m) => m.swapFractions[k] ?? null) }))),
          },
        ]
      : []),
  ];
}

/** NearSwap t values typed as "0.0001" or "0.0001, 0.001": the numbers, or a message saying what is wrong. */
export function parseTValues(text: string): number[] | string {
  const parts = text.split(/[,\s]+/).filter(Boolean);
  if (parts.length > 16) return 'at most 16 values of t';
  const values = parts.map(Number);
  if (values.some((x) => !Number.isFinite(x) || x < 0)) return 't must be a number of at least 0 (several: separated by commas)';
  return values;
}
