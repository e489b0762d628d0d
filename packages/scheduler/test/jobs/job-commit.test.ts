import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostTensor, KilnError } from '@kiln/ir';
import { afterEach, describe, expect, it } from 'vitest';
import { commitFile, readCommit, writeCommit } from '../../src/jobs/job-recovery.js';
import { tempDir } from './fixtures.js';

describe("a job's commit on disk", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('reads back what was written, bit for bit, and reads nothing where there is no file', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    const file = commitFile(tmp.dir, '7');
    expect(await readCommit(file)).toBeUndefined();
    const w = new HostTensor('float32', [2, 2], Float32Array.of(1.5, -0, Number.NaN, 3e-39));
    const step = new HostTensor('float32', [], Float32Array.of(42));
    await writeCommit(file, '7', {
      step: 42,
      variables: new Map([
        ['job7/w', w],
        ['job7/adam/step', step],
      ]),
    });
    const back = (await readCommit(file))!;
    expect(back.step).toBe(42);
    expect(Buffer.from(back.variables.get('job7/w')!.data.buffer).equals(Buffer.from(w.data.buffer))).toBe(
      true,
    );
    expect(back.variables.get('job7/adam/step')!.data[0]).toBe(42);
  });

  it('says which file it could not read when the commit is damaged', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    const file = join(tmp.dir, 'job-3.commit');
    await writeFile(file, new Uint8Array([75, 67, 75, 80, 9, 9, 9]));
    const error = await readCommit(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toContain(`the job's commit ${file} cannot be read`);
  });
});
