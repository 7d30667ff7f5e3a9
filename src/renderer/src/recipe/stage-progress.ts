/** A multi-stage merge's position, from the engine's `stage i/n: name (method)` log lines. */
export interface StagePosition {
  index: number;
  total: number;
  name: string;
}

const STAGE_LINE = /^stage (\d+)\/(\d+): (\S+)/;

export function currentStage(log: readonly string[]): StagePosition | undefined {
  for (let i = log.length - 1; i >= 0; i--) {
    const match = STAGE_LINE.exec(log[i]!);
    if (match) return { index: Number(match[1]), total: Number(match[2]), name: match[3]! };
  }
  return undefined;
}

export function isStageStart(message: string): boolean {
  return STAGE_LINE.test(message);
}

/** Overall percent: finished stages count whole, the running one by its share of bytes written. */
export function overallPercent(stage: StagePosition | undefined, stageFraction: number): number {
  if (!stage) return 100 * stageFraction;
  return (100 * (stage.index - 1 + stageFraction)) / stage.total;
}
