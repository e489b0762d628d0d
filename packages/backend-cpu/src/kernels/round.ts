/** Round half to even (numpy, IEEE roundTiesToEven), matching the IR's reference. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
