import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'

/** Median of the values (the machine is shared and noisy: never quote a mean or a best). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** A median that ignores NaN (percentiles of a run without a successful operation). */
export function medianOf(values: readonly number[]): number {
  const ok = values.filter((v) => !Number.isNaN(v))
  return ok.length === 0 ? Number.NaN : median(ok)
}

/** `v` rounded to `digits` decimals, for result files; NaN and infinities stay as they are. */
export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v
  const f = 10 ** digits
  return Math.round(v * f) / f
}

/**
 * Throughput in GB/s (1e9 bytes/s) of `fn`, which processes `bytes` per call: a warm-up, then
 * `runs` timed runs of `iterations` calls; the median run.
 */
export async function gbps(
  fn: () => unknown | Promise<unknown>,
  bytes: number,
  iterations: number,
  runs = 5,
): Promise<number> {
  for (let i = 0; i < Math.max(2, iterations >> 3); i++) await fn()
  const results: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) await fn()
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    results.push((bytes * iterations) / s / 1e9)
  }
  return median(results)
}

/** What a result file says about where it was measured. */
export function machine(): Record<string, unknown> {
  const c = cpus()
  return {
    node: process.version,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    date: new Date().toISOString(),
  }
}

/** Prints rows as an aligned text table, a line at a time through `print` (default stdout). */
export function printTable(
  rows: readonly Record<string, unknown>[],
  columns: readonly string[],
  print: (line: string) => void = console.log,
): void {
  const cell = (v: unknown): string =>
    v === null || v === undefined ? '-' : typeof v === 'number' ? fmt(v) : String(v)
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i]!)).join('  ')
  print(line([...columns]))
  print(line(widths.map((w) => '-'.repeat(w))))
  for (const r of rows) print(line(columns.map((c) => cell(r[c]))))
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 2)
}

/**
 * Writes results/<name>.json (the rows, or a summary object holding them, for comparing runs
 * over time) and results/<name>.run.json (the whole result with machine info).
 */
export function writeResults(
  name: string,
  rows: readonly unknown[] | Record<string, unknown>,
  result: unknown,
): void {
  const dir = new URL('../results/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  writeFileSync(new URL(`${name}.json`, dir), `${JSON.stringify(rows, null, 2)}\n`)
  writeFileSync(new URL(`${name}.run.json`, dir), `${JSON.stringify(result, null, 2)}\n`)
}
