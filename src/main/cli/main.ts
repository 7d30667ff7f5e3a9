import { EXIT_CODES } from '../../shared/progress';
import { main } from './index';

const code = await main(process.argv.slice(2));
// A cancelled merge does not wait for the read or kernel it abandoned mid-way.
if (code === EXIT_CODES.cancelled) process.exit(code);
process.exitCode = code;
