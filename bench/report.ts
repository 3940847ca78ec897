// The rows every part of the bench produces, and how they are printed. A row without a
// target is informational; a row with one is PASS or FAIL, and the target text says what
// was compared with what.

export type Status = 'PASS' | 'FAIL' | ''

export interface Row {
  /** stable key for the JSON output */
  id: string
  section: string
  figure: string
  /** the measured value, formatted with its unit */
  value: string
  /** the same value as a number (unit in `unit`), for the JSON */
  raw: number | null
  unit: string
  /** what it was compared with, and the ratio, when it was */
  comparison: string
  target: string
  status: Status
}

export function row(r: Omit<Row, 'status' | 'target' | 'comparison'> & Partial<Pick<Row, 'comparison' | 'target'>> & { pass?: boolean }): Row {
  const { pass, ...rest } = r
  return { comparison: '', target: '', ...rest, status: pass === undefined ? '' : pass ? 'PASS' : 'FAIL' }
}

export function fmt(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return String(value)
  const abs = Math.abs(value)
  if (abs >= 1000) return value.toFixed(0)
  if (abs >= 100) return value.toFixed(Math.min(digits, 1))
  return value.toFixed(digits)
}

export const ms = (v: number): string => `${fmt(v, v < 1 ? 3 : 2)} ms`
export const ratio = (v: number): string => `${fmt(v, 2)}×`
export const perSec = (v: number): string => `${fmt(v, 1)}/s`
export const mb = (v: number): string => `${fmt(v, 1)} MB`

const COLUMNS = ['figure', 'value', 'comparison', 'target', 'status'] as const
const MAX_WIDTH: Record<(typeof COLUMNS)[number], number> = { figure: 62, value: 14, comparison: 100, target: 24, status: 4 }

function cut(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text
}

/** A plain-text table grouped by section; long cells are cut (the JSON keeps them whole). */
export function renderTable(rows: Row[]): string {
  const width = Object.fromEntries(COLUMNS.map((c) => [c, Math.min(MAX_WIDTH[c], Math.max(c.length, ...rows.map((r) => r[c].length)))])) as Record<
    (typeof COLUMNS)[number],
    number
  >
  const line = (cells: Record<(typeof COLUMNS)[number], string>): string => COLUMNS.map((c) => cut(cells[c], width[c]).padEnd(width[c])).join(' | ').trimEnd()
  const out: string[] = [line({ figure: 'figure', value: 'value', comparison: 'comparison', target: 'target', status: 'PASS/FAIL' }).replace('PASS/FAIL', 'P/F')]
  out.push(COLUMNS.map((c) => '-'.repeat(width[c])).join('-|-'))
  let section = ''
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section
      out.push(`[${section}]`)
    }
    out.push(line({ figure: r.figure, value: r.value, comparison: r.comparison, target: r.target, status: r.status }))
  }
  return out.join('\n')
}

/** Markdown version of the same table, for docs/performance.md: one bold row per section. */
export function renderMarkdown(rows: Row[]): string {
  const esc = (text: string): string => text.replace(/\|/g, '\\|')
  const out = ['| figure | value | comparison | target | result |', '| --- | --- | --- | --- | --- |']
  let section = ''
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section
      out.push(`| **${esc(section)}** | | | | |`)
    }
    out.push(`| ${esc(r.figure)} | ${esc(r.value)} | ${esc(r.comparison)} | ${esc(r.target)} | ${r.status} |`)
  }
  return out.join('\n')
}
