/**
 * The GPU object in Node, from Dawn (the `webgpu` package): pass it to createWebGpuDevice. This is
 * the only module that imports `webgpu`, so the main entry stays usable in browsers. The import is
 * dynamic so that a platform where Dawn cannot load gives null rather than a failed import.
 */
let dawn: typeof import('webgpu') | null = null;
let loadError = '';
try {
  dawn = await import('webgpu');
} catch (e) {
  loadError = e instanceof Error ? e.message : String(e);
}

/** Dawn's GPU object, or null when Dawn cannot load here (see nodeGpuError). */
export function nodeGpu(): GPU | null {
  if (!dawn) return null;
  try {
    return dawn.create([]);
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
    return null;
  }
}

/** Why nodeGpu() returned null, or '' if it did not. */
export function nodeGpuError(): string {
  return loadError;
}
