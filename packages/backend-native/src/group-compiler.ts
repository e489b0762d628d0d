import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where elementwise.h lives: the generated loops include it. */
const NATIVE = fileURLToPath(new URL('../native/', import.meta.url));

/**
 * How a group's loop is compiled. Contraction into fused multiply-adds is off, because the
 * interpreter rounds after every step and the two must agree to the bit; -march=native because the
 * library is made on, and for, this machine.
 */
const FLAGS = ['-O3', '-march=native', '-ffp-contract=off', '-fno-math-errno', '-fPIC', '-shared', '-x', 'c'];

/** A compile that takes longer than this is abandoned (the group stays in the interpreter). */
const COMPILE_TIMEOUT_MS = 60_000;

/** This user's name, or uid where the system has no name for it (a container's bare uid). */
function user(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'user');
  }
}

export interface GroupCompilerOptions {
  /** The C compiler: `$CC`, or `cc`. */
  readonly cc?: string;
  /** Where libraries are kept between runs: `$KILN_NATIVE_CACHE`, or kiln-native-USER in the temp folder. */
  readonly cacheDir?: string;
  /** Where the one line saying why groups stay in the interpreter goes. */
  readonly log?: (line: string) => void;
}

/**
 * Compiles generated group loops (codegen.ts) into shared libraries with the machine's C compiler,
 * one at a time, and keeps them in a cache folder named by a hash of everything that decides their
 * code (the source, elementwise.h, the flags, the compiler's version, the CPU), so a group is
 * compiled once per machine, not once per process. Libraries are written under a temporary name
 * and renamed into place, so processes compiling the same group at once never load half a file.
 *
 * A library is code this process will load, so the cache folder must be this user's alone: it is
 * made with mode 0700, and one that is a link, another user's, or writable by others is refused.
 * Where anything fails (no compiler, such a folder, a compile error), the compiler says why in one
 * line, makes nothing more, and every group goes on in the interpreter: slower, never wrong.
 */
export class GroupCompiler {
  readonly #cc: string;
  readonly #dir: string;
  readonly #log: (line: string) => void;
  #queue: Promise<unknown> = Promise.resolve();
  #identity: Promise<string> | undefined;
  #stopped: string | undefined;
  #made = 0;

  constructor(options: GroupCompilerOptions = {}) {
    this.#cc = options.cc ?? process.env.CC ?? 'cc';
    this.#dir = options.cacheDir ?? process.env.KILN_NATIVE_CACHE ?? join(tmpdir(), `kiln-native-${user()}`);
    this.#log = options.log ?? ((line) => console.warn(line));
  }

  /** Why this compiler makes nothing more, once something has failed. */
  get stopped(): string | undefined {
    return this.#stopped;
  }

  /** The path of `source`'s library, compiled now or found in the cache; undefined where it cannot be. */
  compile(source: string): Promise<string | undefined> {
    const next = this.#queue.then(() => this.#compile(source));
    this.#queue = next;
    return next;
  }

  async #compile(source: string): Promise<string | undefined> {
    if (this.#stopped) return undefined;
    try {
      const identity = await (this.#identity ??= this.#prepare());
      const key = createHash('sha256').update(identity).update(source).digest('hex').slice(0, 32);
      const library = join(this.#dir, `group-${key}.so`);
      if (existsSync(library)) return library;
      const unique = `${process.pid}-${this.#made++}`;
      const [c, partial] = [join(this.#dir, `group-${key}.${unique}.c`), `${library}.${unique}`];
      await writeFile(c, source, { mode: 0o600 });
      try {
        await run(this.#cc, [...FLAGS, '-I', NATIVE, '-o', partial, c], { timeout: COMPILE_TIMEOUT_MS });
        await rename(partial, library);
      } catch (e) {
        await rm(partial, { force: true });
        const output = (e as { stderr?: string }).stderr?.split('\n').find((l) => /error/.test(l));
        throw new Error(`${output?.trim() || (e as Error).message} (the source is kept: ${c})`);
      }
      // Kept beside its library, under the library's name, for whoever reads the cache.
      await rename(c, join(this.#dir, `group-${key}.c`));
      return library;
    } catch (e) {
      this.stop((e as Error).message);
      return undefined;
    }
  }

  /** Makes nothing more, saying why in one line (the first reason only). */
  stop(why: string): void {
    if (this.#stopped) return;
    this.#stopped = why;
    this.#log(`kiln backend-native: fusion groups run in the interpreter, not as compiled loops: ${why}`);
  }

  /** Checks the cache folder and the compiler; what decides a library's code besides its source. */
  async #prepare(): Promise<string> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const folder = await lstat(this.#dir);
    const uid = process.getuid?.();
    if (!folder.isDirectory() || (uid !== undefined && folder.uid !== uid) || (folder.mode & 0o022) !== 0)
      throw new Error(
        `the cache folder ${this.#dir} must be a folder of this user's that no one else can write`,
      );
    let version: string;
    try {
      version = (await run(this.#cc, ['--version'], { timeout: COMPILE_TIMEOUT_MS })).stdout;
    } catch (e) {
      throw new Error(`no C compiler: ${this.#cc} --version failed (${(e as Error).message.split('\n')[0]})`);
    }
    return [
      'kiln-group-1',
      FLAGS.join(' '),
      version,
      cpus()[0]?.model ?? '',
      readFileSync(join(NATIVE, 'elementwise.h'), 'utf8'),
    ].join('\n');
  }
}
