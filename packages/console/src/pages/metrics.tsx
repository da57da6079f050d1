import { useEffect, useRef, useState } from 'react'
import { AdminError, errorText } from '../clients.ts'
import { useSession } from '../session-context.ts'

/** The gateway's Prometheus endpoint (unauthenticated, like a load balancer's probe). */
const METRICS_PATH = '/_tessera/metrics'
const POLL_MS = 5000
/** Points kept per chart (POLL_MS apart). */
const HISTORY_POINTS = 60
/**
 * A gateway whose counters have not moved on for this long (by this browser's clock) has
 * stopped reporting: it is left out of the sums (the nodes forget it after a minute).
 */
const SILENT_AFTER_MS = 15_000

/** Cumulative request counters of one gateway, since it started. */
export interface Sample {
  requests: number
  /** Requests answered 4xx or 5xx. */
  errors: number
  durationSum: number
  durationCount: number
  /** le (seconds) → cumulative count, summed over labels. */
  buckets: Map<number, number>
}

/** One gateway's counters at one moment. */
interface Snapshot extends Sample {
  id: string
  /** Epoch ms; a change means the gateway restarted and its counters began again at 0. */
  startedAt: number
  /** Epoch ms, the gateway's clock. */
  at: number
}

/** An answer of GET /_tessera/admin/v1/requests (docs/admin-api.md). */
interface RequestsAnswer {
  at: string
  gateways: {
    id: string
    startedAt: string
    at: string
    requests: number
    durationSum: number
    durationCount: number
    buckets: [number, number][]
    errors?: { client: number; server: number }
  }[]
}

/** What one gateway did between two of its snapshots. */
interface Delta {
  seconds: number
  requests: number
  errors: number
  durationSum: number
  durationCount: number
  /** le → requests at or below it in the interval (cumulative, like the histogram). */
  buckets: Map<number, number>
}

/** Sums the series of the S3 request metrics out of Prometheus text. */
export function parseMetrics(text: string): Sample {
  const s: Sample = { requests: 0, errors: 0, durationSum: 0, durationCount: 0, buckets: new Map() }
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN|\+Inf)/.exec(line)
    if (!m) continue
    const [, name, labels = '', value] = m
    const v = Number(value)
    if (!Number.isFinite(v)) continue
    if (name === 'tessera_s3_requests_total') {
      s.requests += v
      if (/status="[45]\d\d"/.test(labels)) s.errors += v
    } else if (name === 'tessera_s3_request_duration_seconds_sum') s.durationSum += v
    else if (name === 'tessera_s3_request_duration_seconds_count') s.durationCount += v
    else if (name === 'tessera_s3_request_duration_seconds_bucket') {
      const le = /le="([^"]+)"/.exec(labels)?.[1]
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le)
      s.buckets.set(bound, (s.buckets.get(bound) ?? 0) + v)
    }
  }
  return s
}

function fromAnswer(g: RequestsAnswer['gateways'][number]): Snapshot {
  const buckets = new Map<number, number>(g.buckets)
  // The answer leaves out the +Inf bucket: it is the count.
  buckets.set(Number.POSITIVE_INFINITY, g.durationCount)
  return {
    id: g.id,
    startedAt: Date.parse(g.startedAt),
    at: Date.parse(g.at),
    requests: g.requests,
    errors: (g.errors?.client ?? 0) + (g.errors?.server ?? 0),
    durationSum: g.durationSum,
    durationCount: g.durationCount,
    buckets,
  }
}

/** `cur − prev` of one run of one gateway; undefined when the counters restarted. */
function diff(prev: Snapshot, cur: Snapshot): Delta | undefined {
  if (cur.startedAt !== prev.startedAt || cur.requests < prev.requests) return undefined
  const buckets = new Map<number, number>()
  for (const [le, n] of cur.buckets) buckets.set(le, n - (prev.buckets.get(le) ?? 0))
  return {
    seconds: (cur.at - prev.at) / 1000,
    requests: cur.requests - prev.requests,
    errors: cur.errors - prev.errors,
    durationSum: cur.durationSum - prev.durationSum,
    durationCount: cur.durationCount - prev.durationCount,
    buckets,
  }
}

/** The q-quantile (0..1) of the requests in `d`, as the bound of its bucket, in s. */
function quantile(d: Pick<Delta, 'durationCount' | 'buckets'>, q: number): number | undefined {
  if (d.durationCount <= 0) return undefined
  const bounds = [...d.buckets.keys()].sort((a, b) => a - b)
  for (const b of bounds) {
    if ((d.buckets.get(b) ?? 0) >= q * d.durationCount) return Number.isFinite(b) ? b : undefined
  }
  return undefined
}

interface Point {
  t: number
  rate: number
  meanMs?: number
  p99Ms?: number
}

/** One gateway's line in the table. */
interface Row {
  id: string
  rate?: number
  errorRate?: number
  p99Ms?: number
  /** Seconds since its counters last moved on, once that is more than SILENT_AFTER_MS. */
  silentFor?: number
}

/**
 * Turns successive snapshots of the gateways into rates: each gateway's latest interval
 * (between its two newest distinct snapshots; a restart starts it over), summed over the
 * gateways still reporting, with histogram deltas merged for the p99.
 */
class RateTracker {
  #gateways = new Map<string, { snap: Snapshot; delta?: Delta; advancedAt: number }>()

  update(snaps: Snapshot[], now: number): { point?: Point; rows: Row[]; reporting: number } {
    const seen = new Set<string>()
    for (const s of snaps) {
      seen.add(s.id)
      const held = this.#gateways.get(s.id)
      if (held === undefined) this.#gateways.set(s.id, { snap: s, advancedAt: now })
      else if (s.startedAt !== held.snap.startedAt || s.at > held.snap.at) {
        const d = diff(held.snap, s)
        // A restart: no interval until its next snapshot.
        this.#gateways.set(s.id, { snap: s, advancedAt: now, ...(d ? { delta: d } : {}) })
      }
    }
    for (const id of this.#gateways.keys()) if (!seen.has(id)) this.#gateways.delete(id)
    const rows: Row[] = []
    const live: Delta[] = []
    let reporting = 0
    for (const [id, g] of this.#gateways) {
      const silent = now - g.advancedAt > SILENT_AFTER_MS
      if (!silent) reporting++
      const d = g.delta
      const row: Row = { id }
      if (silent) row.silentFor = Math.round((now - g.advancedAt) / 1000)
      else if (d !== undefined && d.seconds > 0) {
        live.push(d)
        row.rate = d.requests / d.seconds
        row.errorRate = d.errors / d.seconds
        const p99 = quantile(d, 0.99)
        if (p99 !== undefined) row.p99Ms = p99 * 1000
      }
      rows.push(row)
    }
    rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    if (live.length === 0) return { rows, reporting }
    const merged = { durationSum: 0, durationCount: 0, buckets: new Map<number, number>() }
    let rate = 0
    for (const d of live) {
      rate += d.requests / d.seconds
      merged.durationSum += d.durationSum
      merged.durationCount += d.durationCount
      for (const [le, n] of d.buckets) merged.buckets.set(le, (merged.buckets.get(le) ?? 0) + n)
    }
    const p99 = quantile(merged, 0.99)
    const point: Point = {
      t: now,
      rate,
      ...(merged.durationCount > 0
        ? { meanMs: (merged.durationSum / merged.durationCount) * 1000 }
        : {}),
      ...(p99 !== undefined ? { p99Ms: p99 * 1000 } : {}),
    }
    return { point, rows, reporting }
  }
}

/** Where the figures come from: every gateway (through the nodes), or the one serving us. */
type Scope = { kind: 'cluster'; gateways: number } | { kind: 'gateway' }

/** A gateway's public id, shortened: the common `12D3KooW` start says nothing. */
function shortId(id: string): string {
  return id.length > 10 ? `…${id.slice(-8)}` : id
}

function fixed(v: number | undefined, unit: string): string {
  return v === undefined ? '–' : `${v.toFixed(v < 10 ? 2 : 0)} ${unit}`
}

export function MetricsCharts() {
  const { admin, me } = useSession()
  const [points, setPoints] = useState<Point[]>([])
  const [rows, setRows] = useState<Row[]>([])
  const [scope, setScope] = useState<Scope | undefined>()
  const [error, setError] = useState<string | undefined>()
  /** Why the whole-cluster route is not used (refused, or not offered by this gateway). */
  const [fallbackReason, setFallbackReason] = useState<string | undefined>()
  const tracker = useRef<{ kind: Scope['kind']; rates: RateTracker } | undefined>(undefined)
  const viewCluster = me.capabilities.viewCluster
  useEffect(() => {
    let stopped = false
    let useCluster = viewCluster
    async function clusterSnapshots(): Promise<Snapshot[] | undefined> {
      if (!useCluster) return undefined
      try {
        const answer = await admin.call<RequestsAnswer>('GET', ['requests'])
        return answer.gateways.map(fromAnswer)
      } catch (err) {
        // Refused, or a gateway without the route: this gateway's own figures from now on.
        // Anything else (a node timing out, a 5xx): this gateway's for now, retried next time.
        if (err instanceof AdminError && err.status >= 400 && err.status < 500) useCluster = false
        if (!stopped) setFallbackReason(errorText(err))
        return undefined
      }
    }
    async function poll() {
      try {
        let snaps = await clusterSnapshots()
        const kind: Scope['kind'] = snaps !== undefined ? 'cluster' : 'gateway'
        if (snaps === undefined) {
          const res = await fetch(METRICS_PATH, { credentials: 'omit', cache: 'no-store' })
          if (!res.ok) throw new Error(`${METRICS_PATH} answered ${res.status}`)
          snaps = [{ id: 'this', startedAt: 0, at: Date.now(), ...parseMetrics(await res.text()) }]
        }
        if (stopped) return
        // A change of scope starts the charts over: the two kinds of figures do not add up.
        if (tracker.current?.kind !== kind) {
          tracker.current = { kind, rates: new RateTracker() }
          setPoints([])
        }
        const r = tracker.current.rates.update(snaps, Date.now())
        const point = r.point
        if (point !== undefined) setPoints((ps) => [...ps, point].slice(-HISTORY_POINTS))
        setRows(kind === 'cluster' ? r.rows : [])
        setScope(kind === 'cluster' ? { kind, gateways: r.reporting } : { kind })
        if (kind === 'cluster') setFallbackReason(undefined)
        setError(undefined)
      } catch (err) {
        if (!stopped) setError((err as Error).message)
      }
    }
    void poll()
    const timer = setInterval(() => void poll(), POLL_MS)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [admin, viewCluster])
  const label =
    scope === undefined
      ? ''
      : scope.kind === 'cluster'
        ? `whole cluster (${scope.gateways} gateway${scope.gateways === 1 ? '' : 's'})`
        : 'this gateway'
  const suffix =
    scope === undefined ? '' : scope.kind === 'cluster' ? ' (whole cluster)' : ' (this gateway)'
  return (
    <div className="card" data-testid="metrics">
      <h3>
        {scope === undefined
          ? 'S3 requests'
          : scope.kind === 'cluster'
            ? `S3 requests, ${label}`
            : `S3 requests on this gateway (${window.location.host})`}
      </h3>
      {scope?.kind === 'cluster' && (
        <p className="hint">
          Every gateway sends its request counters to the nodes every 5 s; these charts add up the
          gateways that reported in the last {SILENT_AFTER_MS / 1000} s.
        </p>
      )}
      {scope?.kind === 'gateway' && (
        <p className="hint">
          Each gateway counts the requests it serves: these charts are this gateway only, not the
          cluster. Open the console on another gateway to see its traffic.
          {fallbackReason && <> (Whole-cluster figures unavailable: {fallbackReason})</>}
        </p>
      )}
      {error && <p className="error">{error}</p>}
      {points.length < 2 && <p className="hint">Collecting samples every {POLL_MS / 1000} s…</p>}
      <div className="charts">
        <Chart
          title={`Requests per second${suffix}`}
          points={points.map((p) => p.rate)}
          unit="req/s"
        />
        <Chart title={`Mean latency${suffix}`} points={points.map((p) => p.meanMs)} unit="ms" />
        <Chart
          title={`p99 latency, bucket bound${suffix}`}
          points={points.map((p) => p.p99Ms)}
          unit="ms"
        />
      </div>
      {rows.length > 0 && (
        <table data-testid="gateway-requests">
          <thead>
            <tr>
              <th>Gateway</th>
              <th>Requests/s</th>
              <th>Errors/s (4xx, 5xx)</th>
              <th>p99 latency</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-testid="gateway-row" data-gateway={r.id}>
                <td title={r.id}>
                  <code>{shortId(r.id)}</code>
                </td>
                {r.silentFor !== undefined ? (
                  <td colSpan={3}>no report for {r.silentFor} s</td>
                ) : (
                  <>
                    <td>{fixed(r.rate, 'req/s')}</td>
                    <td>{fixed(r.errorRate, '/s')}</td>
                    <td>{fixed(r.p99Ms, 'ms')}</td>
                  </>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}

const W = 320
const H = 120

/** A line chart in SVG (presentation attributes only: the CSP allows no inline style). */
function Chart(props: { title: string; points: (number | undefined)[]; unit: string }) {
  const values = props.points.filter((v): v is number => v !== undefined)
  const max = Math.max(1e-9, ...values)
  const step = W / Math.max(1, HISTORY_POINTS - 1)
  const coords = props.points
    .map((v, i) =>
      v === undefined
        ? undefined
        : `${(i * step).toFixed(1)},${(H - (v / max) * (H - 10)).toFixed(1)}`,
    )
    .filter((c): c is string => c !== undefined)
  const latest = values[values.length - 1]
  return (
    <figure className="chart">
      <figcaption>
        {props.title}: <strong>{fixed(latest, props.unit)}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={props.title}>
        <rect x={0} y={0} width={W} height={H} fill="none" stroke="#ccd" />
        {coords.length > 1 && (
          <polyline points={coords.join(' ')} fill="none" stroke="#2563eb" strokeWidth={2} />
        )}
        <text x={4} y={12} fontSize={10} fill="#667">
          max {max.toFixed(max < 10 ? 2 : 0)} {props.unit}
        </text>
      </svg>
    </figure>
  )
}
