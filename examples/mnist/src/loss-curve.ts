/**
 * A loss curve as an SVG file a person can open: one polyline per model, axes with ticks, a legend.
 * Plain text generated from numbers only.
 */
export interface Series {
  readonly name: string;
  readonly color: string;
  readonly losses: readonly number[];
}

export function lossCurveSvg(series: readonly Series[], title: string): string {
  const [w, h, pad] = [720, 420, 56];
  const maxSteps = Math.max(...series.map((s) => s.losses.length), 2);
  const maxLoss = Math.max(...series.flatMap((s) => s.losses.filter(Number.isFinite)), 1e-6);
  const x = (i: number) => pad + (i / (maxSteps - 1)) * (w - 2 * pad);
  const y = (v: number) => h - pad - (Math.min(v, maxLoss) / maxLoss) * (h - 2 * pad);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const v = maxLoss * f;
    return `<line x1="${pad}" x2="${w - pad}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${pad - 8}" y="${y(v) + 4}" text-anchor="end" font-size="11">${v.toFixed(2)}</text>`;
  });
  const stepTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const i = Math.round(f * (maxSteps - 1));
    return `<line x1="${x(i)}" x2="${x(i)}" y1="${h - pad}" y2="${h - pad + 4}" stroke="black"/><text x="${x(i)}" y="${h - pad + 16}" text-anchor="middle" font-size="11">${i}</text>`;
  });
  const lines = series.map((s) => {
    const points = s.losses.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${points}"/>`;
  });
  const legend = series.map(
    (s, i) =>
      `<rect x="${w - pad - 150}" y="${pad + i * 18 - 10}" width="12" height="12" fill="${s.color}"/><text x="${w - pad - 132}" y="${pad + i * 18}" font-size="12">${escapeXml(s.name)}</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${w / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>
${ticks.join('\n')}
${stepTicks.join('\n')}
<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="black"/>
<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="black"/>
<text x="${w / 2}" y="${h - 16}" text-anchor="middle" font-size="12">training step</text>
<text x="16" y="${h / 2}" transform="rotate(-90 16 ${h / 2})" text-anchor="middle" font-size="12">loss</text>
${lines.join('\n')}
${legend.join('\n')}
</svg>
`;
}

const escapeXml = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
