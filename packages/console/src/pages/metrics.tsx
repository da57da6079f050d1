import { useEffect, useRef, useState } from 'react'

/** The gateway's Prometheus endpoint (unauthenticated, like a load balancer's probe). */
const METRICS_PATH = '/_tessera/metrics'
const POLL_MS = 5000
/** Points kept per chart (POLL_MS apart). */
const HISTORY_POINTS = 60

interface Sample {
  requests: number
  durationSum: number
  durationCount: number
  /** le → cumulative count, summed over labels. */
  buckets: Map<number, number>
}

/** Sums the series of the S3 request metrics out of Prometheus text. */
export function parseMetrics(text: string): Sample {
  const s: Sample = { requests: 0, durationSum: 0, durationCount: 0, buckets: new Map() }
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN|\+Inf)/.exec(line)
    if (!m) continue
    const [, name, labels = '', value] = m
    const v = Number(value)
    if (!Number.isFinite(v)) continue
    if (name === 'tessera_s3_requests_total') s.requests += v
    else if (name === 'tessera_s3_request_duration_seconds_sum') s.durationSum += v
    else if (name === 'tessera_s3_request_duration_seconds_count') s.durationCount += v
    else if (name === 'tessera_s3_request_duration_seconds_bucket') {
      const le = /le="([^"]+)"/.exec(labels)?.[1]
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le)
      s.buckets.set(bound, (s.buckets.get(bound) ?? 0) + v)
    }
  }
  return s
}

/** The q-quantile (0..1) of the requests between two samples, from bucket deltas, in s. */
function quantile(prev: Sample, cur: Sample, q: number): number | undefined {
  const bounds = [...cur.buckets.keys()].sort((a, b) => a - b)
  const total = cur.durationCount - prev.durationCount
  if (total <= 0) return undefined
  for (const b of bounds) {
    const n = (cur.buckets.get(b) ?? 0) - (prev.buckets.get(b) ?? 0)
    if (n >= q * total) return Number.isFinite(b) ? b : undefined
  }
  return undefined
}

interface Point {
  t: number
  rate: number
  meanMs?: number
  p99Ms?: number
}

export function MetricsCharts() {
  const [points, setPoints] = useState<Point[]>([])
  const [error, setError] = useState<string | undefined>()
  const last = useRef<{ t: number; s: Sample } | undefined>(undefined)
  useEffect(() => {
    let stopped = false
    async function poll() {
      try {
        const res = await fetch(METRICS_PATH, { credentials: 'omit', cache: 'no-store' })
        if (!res.ok) throw new Error(`${METRICS_PATH} answered ${res.status}`)
        const s = parseMetrics(await res.text())
        const t = Date.now()
        const prev = last.current
        last.current = { t, s }
        if (prev && !stopped) {
          const dt = (t - prev.t) / 1000
          const n = s.durationCount - prev.s.durationCount
          const p99 = quantile(prev.s, s, 0.99)
          const point: Point = {
            t,
            rate: Math.max(0, (s.requests - prev.s.requests) / dt),
            ...(n > 0 ? { meanMs: ((s.durationSum - prev.s.durationSum) / n) * 1000 } : {}),
            ...(p99 !== undefined ? { p99Ms: p99 * 1000 } : {}),
          }
          setPoints((ps) => [...ps, point].slice(-HISTORY_POINTS))
        }
        setError(undefined)
      } catch (err) {
        setError((err as Error).message)
      }
    }
    void poll()
    const timer = setInterval(() => void poll(), POLL_MS)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [])
  return (
    <div className="card" data-testid="metrics">
      <h3>S3 requests on this gateway ({window.location.host})</h3>
      <p className="hint">
        Each gateway counts the requests it serves: these charts are this gateway only, not the
        cluster. Open the console on another gateway to see its traffic.
      </p>
      {error && <p className="error">{error}</p>}
      {points.length < 2 && <p className="hint">Collecting samples every {POLL_MS / 1000} s…</p>}
      <div className="charts">
        <Chart
          title="Requests per second (this gateway)"
          points={points.map((p) => p.rate)}
          unit="req/s"
        />
        <Chart title="Mean latency (this gateway)" points={points.map((p) => p.meanMs)} unit="ms" />
        <Chart
          title="p99 latency, bucket bound (this gateway)"
          points={points.map((p) => p.p99Ms)}
          unit="ms"
        />
      </div>
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
        {props.title}:{' '}
        <strong>
          {latest === undefined ? '–' : `${latest.toFixed(latest < 10 ? 2 : 0)} ${props.unit}`}
        </strong>
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
