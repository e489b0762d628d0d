// Runs the TypeScript worker entry from source (tests, examples under tsx): a worker thread does
// not inherit the parent's loader, so it registers tsx itself. Built packages start worker-main.js.
import { register } from 'tsx/esm/api';

register();
await import('./worker-main.ts');
