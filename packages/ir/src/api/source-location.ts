/**
 * Where in the user's program something happened: the first stack frame outside kiln's own
 * packages. Only computed on the way to an error or a warning, since formatting a stack is slow;
 * work that may fail later keeps the Error made when it was asked for (`site`) and reads it then.
 */
export function userLocation(site: Error = new Error()): string | undefined {
  const stack = site.stack?.split('\n').slice(1) ?? [];
  for (const line of stack) {
    if (/[\\/](packages[\\/](ir|scheduler|backend-[\w-]+|kiln)[\\/](src|dist)|node_modules)[\\/]/.test(line))
      continue;
    if (line.includes('node:internal')) continue;
    const m = line.match(/\(?((?:file:\/\/)?[^()\s]+:\d+:\d+)\)?\s*$/);
    if (m) return m[1];
  }
  return undefined;
}

export const atLocation = (where = userLocation()): string => (where ? ` (at ${where})` : '');
