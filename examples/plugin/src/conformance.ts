import { formatReport, runConformance } from 'kiln-tensor/plugin';
import { LoopsDevice } from './loops-device.js';

// `npm run conformance -w examples/plugin`: the kit against this device, every op it claims and
// every composite's expansion, with progress.
const report = await runConformance(new LoopsDevice(), {
  onProgress: (op, cases) => process.stderr.write(`${op}: ${cases} cases\n`),
});
console.log(formatReport(report));
process.exitCode = report.failures.length > 0 ? 1 : 0;
