import { clip, KilnError } from '@kiln/ir';

/**
 * Reads a plain-data object field by field and collects every problem with the path of its field
 * (`loop.batchSize: must be a positive integer; got -3`), so one submit reports all of a spec's
 * mistakes instead of the first. `done()` throws them together as one KilnError.
 */
export class SpecReader {
  private readonly problems: string[] = [];

  constructor(private readonly what: string) {}

  /** Records a problem at `path`. */
  problem(path: string, message: string): void {
    this.problems.push(`${path}: ${message}`);
  }

  /** The object at `path`, or undefined (with a problem recorded) when it is something else. */
  object(value: unknown, path: string): Record<string, unknown> | undefined {
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value))
      return value as Record<string, unknown>;
    this.problem(path, `must be an object; got ${describe(value)}`);
    return undefined;
  }

  /** Fails on keys the spec does not define: a misspelled option must not be silently ignored. */
  onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
    for (const key of Object.keys(o))
      if (!allowed.includes(key))
        this.problem(
          path ? `${path}.${clip(key)}` : clip(key),
          `unknown field; the fields here are ${allowed.join(', ')}`,
        );
  }

  string(value: unknown, path: string, fallback?: string): string | undefined {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value === 'string' && value.length > 0 && value.length <= 4096) return value;
    this.problem(path, `must be a non-empty string; got ${describe(value)}`);
    return undefined;
  }

  /** An integer in [min, max]; `fallback` when absent. */
  integer(value: unknown, path: string, min: number, fallback?: number, max = Number.MAX_SAFE_INTEGER) {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max)
      return value;
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    this.problem(path, `must be an integer ${range}; got ${describe(value)}`);
    return undefined;
  }

  /** A finite number greater than zero; `fallback` when absent. */
  positive(value: unknown, path: string, fallback?: number): number | undefined {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
    this.problem(path, `must be a number > 0; got ${describe(value)}`);
    return undefined;
  }

  oneOf<K extends string>(value: unknown, allowed: readonly K[], path: string, fallback?: K): K | undefined {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as K;
    this.problem(path, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; got ${describe(value)}`);
    return undefined;
  }

  /** A non-empty array of non-empty strings (at most `max`). */
  strings(value: unknown, path: string, fallback?: string[], max = 1024): string[] | undefined {
    if (value === undefined && fallback !== undefined) return fallback;
    if (!Array.isArray(value) || value.length > max) {
      this.problem(path, `must be an array of strings; got ${describe(value)}`);
      return undefined;
    }
    const out = value.map((v, i) => this.string(v, `${path}[${i}]`));
    return out.every((s) => s !== undefined) ? (out as string[]) : undefined;
  }

  /** An object whose values are all non-empty strings. */
  stringMap(value: unknown, path: string): Record<string, string> | undefined {
    const o = this.object(value, path);
    if (!o) return undefined;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(o)) {
      const s = this.string(v, `${path}.${clip(k)}`);
      if (s !== undefined) out[k] = s;
    }
    return out;
  }

  /** Throws every problem found, as one KilnError('invalid-argument'). */
  done(): void {
    if (this.problems.length === 0) return;
    const shown = this.problems.slice(0, 20);
    const more = this.problems.length - shown.length;
    throw new KilnError(
      'invalid-argument',
      `${this.what} is not valid:\n  ${shown.join('\n  ')}${more > 0 ? `\n  (and ${more} more)` : ''}`,
    );
  }
}

/** A short description of a value of the wrong kind, for an error message. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.byteLength} bytes`;
  if (typeof value === 'string') return JSON.stringify(clip(value));
  if (typeof value === 'object') return 'an object';
  return String(value);
}
