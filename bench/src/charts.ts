/**
 * The benchmark charts, as Vega-Lite specifications rendered to SVG in Node by Vega (no browser,
 * no native dependency): throughput (MB/s) against object size and p99 latency against
 * concurrency, each target (Tessera, the HTTP ceiling, an external endpoint) one line style; and
 * a single load run's throughput over time.
 */
import { parse, View } from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import { formatBytes, type LoadResult, OP_KINDS } from './s3-load.ts'

/** One measured case of a chart: medians of one target's runs. */
export interface ChartRow {
  op: 'put' | 'get'
  size: number
  concurrency: number
  /** The line style: `tessera`, `HTTP ceiling`, or an endpoint. */
  target: string
  mbps: number
  p99ms: number
}

/** Title, subtitle and small print of a chart. */
export interface ChartText {
  title: string
  subtitle: string
  note?: string
}

const FONT = 'Helvetica, Arial, sans-serif'
const PANEL = { width: 300, height: 220 }

async function render(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

function header(about: ChartText) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: about.title,
      subtitle: about.note ? [about.subtitle, about.note] : about.subtitle,
      anchor: 'start' as const,
      subtitleFontSize: 10,
    },
    config: { font: FONT, view: { stroke: '#ddd' } },
    background: 'white',
  }
}

/** Rows fit for a log scale: a case without a successful operation has no figure. */
function plotted(rows: readonly ChartRow[], field: 'mbps' | 'p99ms') {
  return rows
    .filter((r) => Number.isFinite(r[field]) && r[field] > 0)
    .map((r) => ({
      ...r,
      op: r.op.toUpperCase(),
      sizeLabel: formatBytes(r.size),
      [field]: Math.round(r[field] * 1000) / 1000,
    }))
}

const sortedUnique = (values: number[]) => [...new Set(values)].sort((a, b) => a - b)

/** The line style of each target, Tessera solid, the references dashed. */
function dashes(rows: readonly ChartRow[]) {
  const targets = [...new Set(rows.map((r) => r.target))]
  return {
    field: 'target',
    type: 'nominal' as const,
    title: 'target',
    // A stroke, not the filled point that the line's points would give the legend.
    legend: {
      symbolType: 'stroke',
      symbolSize: 400,
      encode: { symbols: { update: { stroke: { value: '#444' }, strokeWidth: { value: 2 } } } },
    },
    scale: {
      domain: targets,
      range: targets.map((t) => (t === 'tessera' || targets.length === 1 ? [1, 0] : [5, 3])),
    },
  }
}

/** Throughput (MB/s, log) against object size, one colour per concurrency; PUT and GET panels. */
export function throughputSvg(rows: readonly ChartRow[], about: ChartText): Promise<string> {
  const sizes = sortedUnique(rows.map((r) => r.size)).map(formatBytes)
  return render({
    ...header(about),
    data: { values: plotted(rows, 'mbps') },
    facet: { column: { field: 'op', title: null, sort: ['PUT', 'GET'] } },
    spec: {
      ...PANEL,
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: 'sizeLabel',
          type: 'ordinal',
          sort: sizes,
          title: 'object size',
          axis: { labelAngle: 0 },
        },
        y: { field: 'mbps', type: 'quantitative', scale: { type: 'log' }, title: 'MB/s (log)' },
        color: {
          field: 'concurrency',
          type: 'ordinal',
          title: 'concurrency',
          scale: { scheme: 'category10' },
        },
        strokeDash: dashes(rows),
      },
    },
  })
}

/** p99 latency (ms, log) against concurrency, one colour per object size; PUT and GET panels. */
export function p99Svg(rows: readonly ChartRow[], about: ChartText): Promise<string> {
  const sizes = sortedUnique(rows.map((r) => r.size)).map(formatBytes)
  return render({
    ...header(about),
    data: { values: plotted(rows, 'p99ms') },
    facet: { column: { field: 'op', title: null, sort: ['PUT', 'GET'] } },
    spec: {
      ...PANEL,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'concurrency', type: 'ordinal', title: 'concurrency', axis: { labelAngle: 0 } },
        y: {
          field: 'p99ms',
          type: 'quantitative',
          scale: { type: 'log' },
          title: 'p99 latency, ms (log)',
        },
        color: {
          field: 'sizeLabel',
          type: 'ordinal',
          sort: sizes,
          title: 'object size',
          scale: { scheme: 'category10' },
        },
        strokeDash: dashes(rows),
      },
    },
  })
}

/** One load run's MB/s and ops/s over time, per operation. */
export function timeSeriesSvg(r: LoadResult, about: ChartText): Promise<string> {
  const step = r.series.intervalMs / 1000
  const values: { t: number; op: string; mbps: number; opsPerSec: number }[] = []
  for (const k of OP_KINDS) {
    const ops = r.series.ops[k]
    const bytes = r.series.bytes[k]
    if (!ops || !bytes) continue
    ops.forEach((n, i) => {
      // The last interval ends with the run: a rate over a sliver of it means nothing.
      const len = Math.min((i + 1) * step, r.seconds) - i * step
      if (len < step / 2) return
      values.push({
        t: Math.round((i + 1) * step * 1000) / 1000,
        op: k.toUpperCase(),
        mbps: (bytes[i] ?? 0) / len / 1e6,
        opsPerSec: n / len,
      })
    })
  }
  const panel = (field: 'mbps' | 'opsPerSec', title: string) => ({
    ...PANEL,
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 't', type: 'quantitative' as const, title: 'seconds into the run' },
      y: { field, type: 'quantitative' as const, title },
      color: { field: 'op', type: 'nominal' as const, title: 'operation' },
    },
  })
  return render({
    ...header(about),
    data: { values },
    hconcat: [panel('mbps', 'MB/s'), panel('opsPerSec', 'ops/s')],
  })
}
