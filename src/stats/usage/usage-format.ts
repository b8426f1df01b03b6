export type UsageFormat = 'table' | 'json' | 'csv';

/** Rows a table's column widths are taken from: the first ones (a longer later value just overflows). */
export const TABLE_SAMPLE_ROWS = 1000;

const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
const csvCell = (v: unknown) => {
  const c = cell(v);
  return /[",\n\r]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c;
};

/**
 * Writes rows as they come in one format, returning text pieces to send: JSON as one array, CSV
 * with a header, a table aligned on the widths of its first TABLE_SAMPLE_ROWS rows. Memory is
 * bounded by that sample, whatever the number of rows.
 */
export class UsageFormatter {
  private count = 0;
  private cols: string[] | null = null;
  private sample: Record<string, unknown>[] | null = [];
  private widths: number[] = [];

  constructor(
    private readonly format: UsageFormat,
    /** JSON only: what opens and closes the array (a paged body wraps it in an object). */
    private readonly jsonOpen = '[',
  ) {}

  /** Text for one more row (a table's first rows are held back until its widths are known). */
  row(r: Record<string, unknown>): string {
    this.count++;
    if (this.format === 'json') return `${this.count === 1 ? `${this.jsonOpen}\n` : ',\n'}${JSON.stringify(r)}`;
    this.cols ??= Object.keys(r);
    if (this.format === 'csv') {
      const line = this.cols.map((c) => csvCell(r[c])).join(',') + '\n';
      return this.count === 1 ? `${this.cols.join(',')}\n${line}` : line;
    }
    if (this.sample) {
      this.sample.push(r);
      return this.sample.length < TABLE_SAMPLE_ROWS ? '' : this.releaseSample();
    }
    return this.tableLine(this.cols.map((c) => cell(r[c])));
  }

  /** The closing text; `empty` is what a table says when there was no row. */
  end(): string {
    if (this.format === 'json') return this.count === 0 ? `${this.jsonOpen}]` : '\n]';
    if (this.format === 'csv') return '';
    if (this.count === 0) return '(no usage)\n';
    return this.sample ? this.releaseSample() : '';
  }

  private releaseSample(): string {
    const rows = this.sample!;
    this.sample = null;
    const cols = this.cols!;
    this.widths = cols.map((c) => c.length);
    for (const r of rows) cols.forEach((c, i) => (this.widths[i] = Math.max(this.widths[i], cell(r[c]).length)));
    const out = [this.tableLine(cols), this.tableLine(this.widths.map((w) => '-'.repeat(w)))];
    for (const r of rows) out.push(this.tableLine(cols.map((c) => cell(r[c]))));
    return out.join('');
  }

  private tableLine(vals: string[]): string {
    return (
      vals
        .map((v, i) => v.padEnd(this.widths[i]))
        .join('  ')
        .trimEnd() + '\n'
    );
  }
}

/** All rows at once (small, already bounded results: the fleet reader). */
export function formatUsage(rows: Record<string, unknown>[], format: UsageFormat): string {
  const f = new UsageFormatter(format);
  let out = '';
  for (const r of rows) out += f.row(r);
  return out + f.end() + (format === 'json' ? '\n' : '');
}
