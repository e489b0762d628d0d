export const IMPLS = ['kiln-webgpu', 'tfjs-webgpu', 'kiln-cpu'] as const;
export type Impl = (typeof IMPLS)[number];

/** A median and the throughput it gives (GFLOP/s for matmul, samples/s for training). */
export interface Cell {
  readonly medianMs: number;
  readonly samples: number;
  readonly rate: number;
}

export interface Row {
  readonly label: string;
  readonly cells: Partial<Record<Impl, Cell>>;
}

/** A markdown table: one column per implementation, then kiln-webgpu's throughput ratios. */
export function printTable(first: string, rows: readonly Row[], format: (cell: Cell) => string): void {
  const ratio = (row: Row, other: Impl) => {
    const kiln = row.cells['kiln-webgpu'];
    const them = row.cells[other];
    return kiln && them ? `${(kiln.rate / them.rate).toFixed(2)}x` : 'n/a';
  };
  console.log(`| ${first} | ${IMPLS.join(' | ')} | kiln-webgpu / tfjs-webgpu | kiln-webgpu / kiln-cpu |`);
  console.log(`| --: | ${IMPLS.map(() => '--:').join(' | ')} | --: | --: |`);
  for (const row of rows) {
    const cells = IMPLS.map((impl) => {
      const cell = row.cells[impl];
      return cell ? format(cell) : 'n/a';
    });
    console.log(
      `| ${row.label} | ${cells.join(' | ')} | ${ratio(row, 'tfjs-webgpu')} | ${ratio(row, 'kiln-cpu')} |`,
    );
  }
}
