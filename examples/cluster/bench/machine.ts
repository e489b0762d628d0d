import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * The machine a benchmark ran on, as its figures are recorded with: the CPU model, its cores, and
 * the vector extensions that decide what the kernels can do (figures from AVX2 and AVX-512
 * machines differ, and both are real).
 */
export function machine(): { readonly cpu: string; readonly cores: number; readonly vector: string } {
  let flags: string[] = [];
  try {
    flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(' ');
  } catch {
    // Not Linux: the model alone is recorded.
  }
  const vector =
    ['avx2', 'fma', 'avx512f', 'avx512vnni'].filter((f) => flags.includes(f)).join(' ') ||
    'none of avx2/fma/avx512';
  return { cpu: cpus()[0]?.model ?? 'unknown CPU', cores: cpus().length, vector };
}
