/**
 * The coordinator's decision log: one entry per event it handled, with the stimulus id the shell
 * gave the event and every decision it took because of it. `story('worker:1')` then answers "why
 * did this partition go there" and "why did this run fail" after the fact, as Dask's `story()`
 * does. Bounded: the routine entries of a long training (dispatches and results, several per step)
 * keep the most recent ones; membership and placement, rare and what a failure usually turns on,
 * are kept apart so a long run does not push them out.
 */

/** One event the coordinator handled, and what it decided because of it. */
export interface StoryEntry {
  /** Order among all entries. */
  readonly seq: number;
  /** The id the shell gave the event: `exited-17`. */
  readonly stimulus: string;
  /** When the event arrived, in milliseconds since the epoch (the shell's clock). */
  readonly at: number;
  readonly event: string;
  readonly decisions: readonly string[];
  /** What it concerns: worker names, `run:N`, partition keys, plan prefixes, variable names. */
  readonly subjects: readonly string[];
}

export const ROUTINE_ENTRIES = 8192;
export const LASTING_ENTRIES = 2048;

export class StoryLog {
  private readonly routine: StoryEntry[] = [];
  private readonly lasting: StoryEntry[] = [];
  private seq = 0;

  constructor(
    private readonly routineCapacity = ROUTINE_ENTRIES,
    private readonly lastingCapacity = LASTING_ENTRIES,
  ) {}

  add(entry: Omit<StoryEntry, 'seq'>, lasting: boolean): void {
    const list = lasting ? this.lasting : this.routine;
    const capacity = lasting ? this.lastingCapacity : this.routineCapacity;
    list.push({ seq: this.seq++, ...entry });
    // Trimmed in batches, so a full log costs a splice every quarter-capacity events, not each one.
    if (list.length > capacity + (capacity >> 2)) list.splice(0, list.length - capacity);
  }

  /** Entries that concern any of `subjects` (all entries if none is given), oldest first. */
  story(subjects: readonly string[] = []): StoryEntry[] {
    const wanted = new Set(subjects);
    const concerns = (e: StoryEntry) => wanted.size === 0 || e.subjects.some((s) => wanted.has(s));
    return [...this.routine.filter(concerns), ...this.lasting.filter(concerns)].sort((a, b) => a.seq - b.seq);
  }
}

/** One line per entry: time, stimulus, event, then its decisions. */
export function formatStory(entries: readonly StoryEntry[]): string {
  return entries
    .map((e) => {
      const time = new Date(e.at).toISOString().slice(11, 23);
      const decided = e.decisions.length > 0 ? ` -> ${e.decisions.join('; ')}` : '';
      return `${time} [${e.stimulus}] ${e.event}${decided}`;
    })
    .join('\n');
}
