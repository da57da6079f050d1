// A quick check of the S3 load generator against the HTTP ceiling (no gateway): PUT and GET of
// 4 KiB, 1 MiB and 64 MiB at concurrency 8 for 1 s each, and 4 KiB GET at concurrency 32; prints
// a table with the peak RSS of the ceiling and of this (client) process. Not a test: it fails
// only if a run has errors. `node bench/dist/s3-load.selfcheck.js [--ms 1000]`
//
// Last, the same 4 KiB GETs from a bare HTTP/1.1 client on node:net (no undici, no signing):
// the difference is the load generator's own CPU per request, which on 2 cores is taken from
// the server under test.
import net from 'node:net'
import { startCeiling } from './http-ceiling.ts'
import { machine, printTable } from './measure.ts'
import { sampleRss } from './proc-mem.ts'
import { createBucket, prepareObjects, runLoad } from './s3-load.ts'

const KiB = 1024
const MiB = 1024 * KiB
const at = process.argv.indexOf('--ms')
const durationMs = at > 0 ? Number(process.argv[at + 1]) : 1000
const credentials = { accessKeyId: 'selfcheck', secretAccessKey: 'selfcheck-secret' }

const ceiling = await startCeiling()
const target = { endpoint: ceiling.endpoint, credentials, bucket: 'selfcheck' }
const rows: Record<string, unknown>[] = []
let failed = false
try {
  await createBucket(target)
  const cases: [op: 'put' | 'get', size: number, concurrency: number][] = [
    ['put', 4 * KiB, 8],
    ['put', MiB, 8],
    ['put', 64 * MiB, 8],
    ['get', 4 * KiB, 8],
    ['get', MiB, 8],
    ['get', 64 * MiB, 8],
    ['get', 4 * KiB, 32],
  ]
  for (const [op, size, concurrency] of cases) {
    const objects = 16
    if (op === 'get') await prepareObjects({ ...target, size, count: objects, keyPrefix: 'obj' })
    const mem = sampleRss([ceiling.pid, process.pid], 50, { resetPeak: true })
    const r = await runLoad({
      ...target,
      op,
      size,
      concurrency,
      durationMs,
      keyPrefix: 'obj',
      ...(op === 'get' ? { objects } : {}),
    })
    const peak = mem.stop()
    failed ||= r.errors > 0
    rows.push({
      op,
      size,
      concurrency,
      ops: r.ops,
      opsPerSec: Math.round(r.opsPerSec),
      mbps: Math.round(r.mbps),
      p50ms: r.p50ms,
      p99ms: r.p99ms,
      errors: r.errors,
      serverMiB: Math.round(peak[ceiling.pid]! / MiB),
      clientMiB: Math.round(peak[process.pid]! / MiB),
      firstError: r.firstError,
    })
  }
  rows.push({
    op: 'get-bare-client',
    size: 4 * KiB,
    concurrency: 32,
    opsPerSec: Math.round(await bareGets(ceiling.endpoint, 'obj-4096-0', 32, durationMs)),
  })
} finally {
  await ceiling.stop()
}
printTable(rows, [
  'op',
  'size',
  'concurrency',
  'ops',
  'opsPerSec',
  'mbps',
  'p50ms',
  'p99ms',
  'errors',
  'serverMiB',
  'clientMiB',
  'firstError',
])
console.log(JSON.stringify({ machine: machine(), durationMs }))
if (failed) process.exitCode = 1

/** GETs/s of `key` from a minimal keep-alive client: one request in flight per connection. */
async function bareGets(endpoint: string, key: string, connections: number, ms: number) {
  const { hostname, port, host } = new URL(endpoint)
  const request = Buffer.from(`GET /selfcheck/${key} HTTP/1.1\r\nhost: ${host}\r\n\r\n`)
  let ops = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<void>((done, fail) => {
          const s = net.connect(Number(port), hostname, () => s.write(request))
          s.setNoDelay(true)
          s.on('error', fail)
          let pending: Buffer = Buffer.alloc(0)
          let need = -1
          s.on('data', (d: Buffer) => {
            pending = pending.length > 0 ? Buffer.concat([pending, d]) : d
            if (need < 0) {
              const end = pending.indexOf('\r\n\r\n')
              if (end < 0) return
              const m = /content-length: *(\d+)/i.exec(pending.toString('latin1', 0, end))
              need = end + 4 + Number(m?.[1] ?? 0)
            }
            if (pending.length < need) return
            pending = pending.subarray(need)
            need = -1
            ops++
            if (performance.now() - t0 < ms) s.write(request)
            else {
              s.destroy()
              done()
            }
          })
        }),
    ),
  )
  return ops / ((performance.now() - t0) / 1000)
}
