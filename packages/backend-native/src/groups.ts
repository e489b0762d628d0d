import type { NativeAddon } from './addon.js';
import { type GroupShape, groupSource } from './codegen.js';
import { GroupCompiler } from './group-compiler.js';

/**
 * Programs of at least this many elements and two steps or more get a generated loop. Below it
 * the data is in cache, where the interpreter's passes over a block cost little, and a compile
 * (tens of milliseconds, once per machine) would not pay for itself.
 */
export const GROUP_ELEMENTS = 2 ** 16;

/** How a device's fusion groups stand. */
export interface GroupsState {
  /** Programs running through generated loops. */
  readonly attached: number;
  /** Why no more loops are made, where something failed (all groups are then interpreted). */
  readonly stopped: string | undefined;
}

/** One compiler per process: its queue keeps compiles from crowding the cores the runs need. */
let shared: GroupCompiler | undefined;

/**
 * A device's fusion groups on their way to generated loops (codegen.ts): each is compiled in the
 * background while its program runs in the interpreter, and attached to the program when its
 * library is ready (tiered, as a JavaScript engine moves a hot function to optimized code), so a
 * first run never waits for a compiler.
 */
export class Groups {
  readonly #addon: NativeAddon;
  readonly #compiler: GroupCompiler;
  readonly #pending = new Set<Promise<void>>();
  #attached = 0;

  constructor(addon: NativeAddon, compiler: GroupCompiler = (shared ??= new GroupCompiler())) {
    this.#addon = addon;
    this.#compiler = compiler;
  }

  /** Starts `program`'s loop (made for `shape`) compiling; it runs through it once attached. */
  offer(program: object, shape: GroupShape): void {
    const source = groupSource(shape);
    if (typeof source !== 'string' || this.#compiler.stopped) return;
    const bools = Uint8Array.from([...shape.inputs, ...shape.outputs].map((v) => (v.bool ? 1 : 0)));
    const done = this.#compiler
      .compile(source)
      .then((library) => {
        if (!library) return;
        this.#addon.attachGroup(program, library, bools);
        this.#attached++;
      })
      .catch((e: Error) => this.#compiler.stop(e.message));
    this.#pending.add(done);
    void done.finally(() => this.#pending.delete(done));
  }

  /**
   * Settles once every loop offered so far is attached or has been given up on, with how many are
   * attached and, where loops are no longer made, why.
   */
  async settled(): Promise<GroupsState> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    return { attached: this.#attached, stopped: this.#compiler.stopped };
  }
}
