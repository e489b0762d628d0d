import type { Tensor } from '../eager/tensor.js';

/**
 * Whether the tensors a compiled function read from its closure when it was traced may no longer
 * be the ones its closure holds. JavaScript cannot look into a closure, so a trace captures the
 * tensors it met; when the program replaces one (`w = w.sub(step)`), the trace would go on reading
 * the old tensor. Two signs are watched: a captured tensor was disposed (it was surely replaced),
 * or an eager op computed a tensor of its exact type from it (it may have been). On the second,
 * compile traces again and compares what the closure gives now: the same tensors keep the compiled
 * program, others replace it. A replacement made some other way (a fresh `randomNormal` assigned to
 * the same variable, say) is not seen: dispose the old tensor, which is also what frees its memory.
 */
export class CaptureGuard {
  private marks: number[];

  constructor(readonly captures: readonly Tensor[]) {
    for (const t of captures) t.capturedBy++;
    this.marks = captures.map((t) => t.successors);
  }

  /** 'disposed': trace again; 'suspect': trace again and compare; null: still current. */
  state(): 'disposed' | 'suspect' | null {
    let suspect = false;
    for (let i = 0; i < this.captures.length; i++) {
      const t = this.captures[i]!;
      if (t.isDisposed) return 'disposed';
      if (t.successors !== this.marks[i]) suspect = true;
    }
    return suspect ? 'suspect' : null;
  }

  /** Whether a new trace read exactly these tensors. */
  sameAs(captures: readonly Tensor[]): boolean {
    return captures.length === this.captures.length && captures.every((t, i) => t === this.captures[i]);
  }

  /** The current state is the checked one. */
  confirm(): void {
    this.marks = this.captures.map((t) => t.successors);
  }

  release(): void {
    for (const t of this.captures) t.capturedBy--;
  }
}
