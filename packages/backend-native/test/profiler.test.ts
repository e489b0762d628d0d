import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { addon } from '../src/index.js';

/**
 * Node's sampling profiler signals the thread it samples; inside oneDNN's convolutions that once
 * corrupted the heap within seconds (native/conv.cc holds the signal off). A real process, under
 * the real profiler, with the real addon.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!addon && !required)('backend-native under the profiler', () => {
  it('runs convolutions sampled by --cpu-prof without corrupting memory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-prof-'));
    dirs.push(dir);
    const built = fileURLToPath(new URL('../build/Release/kiln_native.node', import.meta.url));
    const fixture = fileURLToPath(new URL('./fixtures/profiled-conv.mjs', import.meta.url));
    const run = spawnSync(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', fixture, built, '3000'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.stderr).not.toMatch(/corrupted|malloc|double free/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/ran \d+ convolution pairs/);
    expect(readdirSync(dir).some((f) => f.endsWith('.cpuprofile'))).toBe(true);
  }, 90_000);
});
