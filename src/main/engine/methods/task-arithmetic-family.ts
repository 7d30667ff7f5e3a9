import { taskArithmeticMethod } from './task-arithmetic';

/** The task-vector methods mergekit registers, each one configuration of the same merge. */
export const TASK_ARITHMETIC_METHODS = [
  taskArithmeticMethod({
    name: 'task_arithmetic',
    prettyName: 'Task Arithmetic',
    paper: 'https://arxiv.org/abs/2212.04089',
    description: 'Adds each model\'s weighted difference from the base model to the base.',
    consensus: undefined,
    sparsification: undefined,
    defaultNormalize: false,
    defaultRescale: false,
  }),
  taskArithmeticMethod({
    name: 'ties',
    prettyName: 'TIES',
    paper: 'https://arxiv.org/abs/2306.01708',
    description: 'Keeps each task vector\'s largest entries, elects a sign per weight, and averages the agreeing ones.',
    consensus: 'sum',
    sparsification: 'magnitude',
    defaultNormalize: true,
    defaultRescale: false,
  }),
  taskArithmeticMethod({
    name: 'dare_ties',
    prettyName: 'DARE TIES',
    paper: 'https://arxiv.org/abs/2311.03099',
    description: 'Drops task-vector entries at random, rescales the rest, then merges with TIES sign election.',
    consensus: 'sum',
    sparsification: 'random',
    defaultNormalize: false,
    defaultRescale: true,
  }),
  taskArithmeticMethod({
    name: 'dare_linear',
    prettyName: 'Linear DARE',
    paper: 'https://arxiv.org/abs/2311.03099',
    description: 'Drops task-vector entries at random, rescales the rest, and adds them to the base.',
    consensus: undefined,
    sparsification: 'random',
    defaultNormalize: false,
    defaultRescale: true,
  }),
];
