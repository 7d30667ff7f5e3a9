/**
 * A stand-in for the app in job-resume.test.ts: a Node process holding a JobService that runs one
 * merge (the recipe on stdin); the test kills it, with its engine, mid-merge.
 *   node --import tsx test/services/job-app.ts ENGINE WORK_ROOT OUTPUT_ROOT MODEL_ROOT JOBS_FILE SHARD_BYTES
 */
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { EventBus } from '../../src/main/services/events';
import { JobService } from '../../src/main/services/job-service';

const [engineEntry, root, outputRoot, modelRoot, jobsFile, shard] = process.argv.slice(2) as [string, string, string, string, string, string];
const events = new EventBus();
const jobs = new JobService({ nodeBinary: process.execPath, engineEntry, workDir: join(root, 'app-work'), outputRoot, modelRoots: () => [modelRoot], events, jobsFile });
await jobs.start({ recipe: await text(process.stdin), outputName: 'merged', outShardSize: Number(shard), device: 'cpu' });
