import { isTensorHandle, KilnError } from '@kiln/ir';
import { Tensor } from '../eager/tensor.js';
import type { GraphFunction } from '../trace/graph-function.js';
import { rebuild, type Structure } from '../trace/structure.js';
import { traceWith } from '../trace/trace.js';
import { GraphBreak } from '../trace/trace-graph.js';
import { CaptureGuard } from './capture-guard.js';
import { signatureOf } from './signature.js';

export interface CompileFunctionOptions {
  /** Used in messages; defaults to the function's name. */
  readonly name?: string;
  /** Most signatures kept compiled; the least recently used is dropped past it. Default 32. */
  readonly cacheSize?: number;
  /** Warn when the function has been traced this many times (it probably should not be). Default 5. */
  readonly retraceWarningAt?: number;
}

export interface CompileStats {
  readonly calls: number;
  /** Traces so far; every one after the first is a retrace. */
  readonly traces: number;
  /** Calls that ran eagerly because tracing hit a graph break. */
  readonly eagerCalls: number;
  /** Signatures cached now. */
  readonly cached: number;
}

type Entry =
  | {
      readonly kind: 'graph';
      readonly fn: GraphFunction;
      readonly structure: Structure;
      readonly guard: CaptureGuard;
    }
  | { readonly kind: 'eager'; readonly reason: string };

function disposeEntry(entry: Entry): void {
  if (entry.kind !== 'graph') return;
  entry.guard.release();
  entry.fn.dispose();
}

export type Compiled<F extends (...args: never[]) => unknown> = F & {
  readonly stats: CompileStats;
  /** Drops every cached trace. */
  clear(): void;
};

/**
 * Compiles `fn` to a graph on first call per input signature (tf.function, torch.compile): the
 * function is traced, pruned and compiled for its device, and later calls with the same signature
 * run that executable. A new signature traces again. Where the function reads tensor values to
 * steer JS, the trace cannot capture it: that signature falls back to eager execution, with a
 * warning naming the place (a graph break), and never gives a wrong answer.
 */
export function compile<F extends (...args: never[]) => unknown>(
  fn: F,
  options: CompileFunctionOptions = {},
): Compiled<F> {
  if (typeof fn !== 'function')
    throw new KilnError(
      'invalid-argument',
      `compile: expected a function, got ${fn === null ? 'null' : typeof fn}`,
    );
  const name = options.name ?? (fn.name || 'the compiled function');
  const cacheSize = Math.max(1, options.cacheSize ?? 32);
  const warnAt = options.retraceWarningAt ?? 5;
  const cache = new Map<string, Entry>();
  /** The latest signatures traced, for the retrace warning; bounded, however often it retraces. */
  const recent: string[] = [];
  let calls = 0;
  let traces = 0;
  let eagerCalls = 0;

  const trace = (key: string, args: readonly unknown[]): Entry => {
    try {
      const traced = traceWith({ strict: true, name }, fn, ...args);
      const graphFn = traced.toFunction();
      return {
        kind: 'graph',
        fn: graphFn,
        structure: traced.structure,
        guard: new CaptureGuard(graphFn.captures),
      };
    } catch (e) {
      if (!(e instanceof GraphBreak)) throw e;
      console.warn(
        `kiln compile warning: graph break in ${name}: ${e.message}. Calls with the signature (${key}) run eagerly.`,
      );
      return { kind: 'eager', reason: e.message };
    }
  };

  const traceFor = (key: string, args: readonly unknown[]): Entry => {
    traces++;
    recent.push(key);
    if (recent.length > warnAt) recent.shift();
    if (traces === warnAt) {
      console.warn(
        `kiln compile warning: ${name} was traced ${traces} times, for these signatures:\n  ${recent.join('\n  ')}\n` +
          'Each new tensor shape or non-tensor argument value retraces; keep them stable, or pass changing numbers as tensors.',
      );
    }
    return trace(key, args);
  };

  /**
   * A cached trace whose closed-over tensors may have been replaced (see CaptureGuard): kept if
   * a new trace reads the same tensors, replaced by the new trace otherwise.
   */
  const current = (key: string, entry: Entry, args: readonly unknown[]): Entry | undefined => {
    if (entry.kind !== 'graph') return entry;
    const state = entry.guard.state();
    if (state === null) return entry;
    if (state === 'suspect') {
      const again = trace(key, args);
      if (again.kind === 'graph' && entry.guard.sameAs(again.fn.captures)) {
        disposeEntry(again);
        entry.guard.confirm();
        return entry;
      }
      disposeEntry(entry);
      cache.delete(key);
      cache.set(key, again);
      return again;
    }
    disposeEntry(entry);
    cache.delete(key);
    return undefined;
  };

  const compiled = (...args: unknown[]): unknown => {
    // Called while another function is traced (valueAndGrad of a compiled function, a compiled
    // function inside a compiled one): inline it into that trace.
    if (args.some((a) => isTensorHandle(a) && !(a instanceof Tensor)))
      return (fn as unknown as (...a: unknown[]) => unknown)(...args);
    calls++;
    const key = signatureOf(args, name);
    const cachedEntry = cache.get(key);
    let entry = cachedEntry && current(key, cachedEntry, args);
    if (entry) {
      cache.delete(key);
    } else {
      entry = traceFor(key, args);
      if (cache.size >= cacheSize) {
        // Freed now, not later: a loop that never yields must not pile up dropped executables.
        const [oldestKey, oldest] = cache.entries().next().value as [string, Entry];
        disposeEntry(oldest);
        cache.delete(oldestKey);
      }
    }
    cache.set(key, entry);
    if (entry.kind === 'eager') {
      eagerCalls++;
      return (fn as unknown as (...a: unknown[]) => unknown)(...args);
    }
    const tensors = args.filter((a): a is Tensor => a instanceof Tensor);
    return rebuild(entry.structure, entry.fn.call(tensors));
  };

  Object.defineProperty(compiled, 'name', { value: name });
  Object.defineProperty(compiled, 'stats', {
    get: (): CompileStats => ({ calls, traces, eagerCalls, cached: cache.size }),
  });
  Object.defineProperty(compiled, 'clear', {
    value: () => {
      for (const e of cache.values()) disposeEntry(e);
      cache.clear();
    },
  });
  return compiled as unknown as Compiled<F>;
}
