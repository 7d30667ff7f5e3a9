import { execFile } from 'node:child_process';
import type { DeviceChoice, PlanDevice } from '../../shared/contract';

export interface DeviceProbeOptions {
  nodeBinary: string;
  engineEntry: string;
}

/**
 * Where a merge would compute, asked of the engine program itself (`alloy devices --json`): the GPU
 * is opened in the engine's own kind of process, never in the app's, and once per choice, since
 * adapters do not come and go while the app runs.
 */
export class DeviceProbe {
  private readonly answers = new Map<DeviceChoice, Promise<PlanDevice>>();

  constructor(private readonly options: DeviceProbeOptions) {}

  describe(device: DeviceChoice): Promise<PlanDevice> {
    let answer = this.answers.get(device);
    if (!answer) {
      answer = this.ask(device);
      this.answers.set(device, answer);
      // A probe that failed (a busy machine, a crash) is asked again next time.
      answer.catch(() => this.answers.delete(device));
    }
    return answer;
  }

  private ask(device: DeviceChoice): Promise<PlanDevice> {
    const args = [this.options.engineEntry, 'devices', '--device', device, '--json'];
    const env = { ...process.env, ELECTRON_RUN_AS_NODE: undefined };
    return new Promise((resolve, reject) => {
      execFile(this.options.nodeBinary, args, { env, timeout: 60_000, maxBuffer: 1 << 20 }, (error, stdout) => {
        if (error) return reject(new Error(`the engine could not say where it would compute: ${error.message}`));
        try {
          const report = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { kind: 'cpu' | 'gpu'; description: string; notices: string[] };
          resolve({ choice: device, kind: report.kind, description: report.description, notices: report.notices });
        } catch {
          reject(new Error(`the engine's device report is not JSON: ${stdout.slice(0, 200)}`));
        }
      });
    });
  }
}
