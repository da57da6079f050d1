/**
 * Observability end to end (issue #7): a real 6-node RS(2,1) cluster (two erasure sets of three
 * drives) and a real gateway. S3 requests move the gateway's Prometheus counters with the right
 * labels; the drive gauges cover every drive of the map; /_tessera/health/ready turns 503, naming
 * the set, when two nodes of one set stop, and 200 again when they are back; a node started
 * with `metricsListen` serves its own /metrics and health endpoints.
 */
import { appendFile, readFile } from 'node:fs/promises'
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import t from 'tap'
import { ROOT, startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, s3Fault, sha256, uniqueBucket } from './harness/s3.ts'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses Prometheus text exposition (samples only). */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`unparsable metrics line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** The samples of `name` whose labels include `labels`. */
function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
}

function sum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return find(samples, name, labels).reduce((a, s) => a + s.value, 0)
}

async function scrape(url: string): Promise<{ samples: Sample[]; text: string; type: string }> {
  const res = await fetch(url)
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`)
  const text = await res.text()
  return { samples: parseMetrics(text), text, type: res.headers.get('content-type') ?? '' }
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url)
  return { status: res.status, body: await res.json() }
}

/** Polls `url` until it answers `status` (bounded; no timing is asserted). */
async function waitForStatus(url: string, status: number): Promise<{ body: unknown }> {
  let last: { status: number; body: unknown } | undefined
  for (let i = 0; i < 150; i++) {
    last = await getJson(url)
    if (last.status === status) return last
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${url} never answered ${status}; last ${JSON.stringify(last)}`)
}

t.test('gateway and node metrics, health and readiness', async (t) => {
  const c = await startCluster(t, { nodes: 6, drivesPerNode: 1, k: 2, m: 1, gateways: 1 })
  const gw = c.gateways[0]!
  const s3 = s3Client(gw.endpoint)
  t.teardown(() => s3.destroy())
  const base = `${gw.endpoint}/_tessera`

  const bucket = uniqueBucket('metrics')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  // Inline and erasure-coded sizes (inline below 4 KiB, 64 KiB blocks).
  const sizes = [1000, 10_000, 100_000, 200_000, 300_000]
  const keys = sizes.map((_, i) => `secret-key-name-${i}`)
  let uploaded = 0
  for (const [i, n] of sizes.entries()) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keys[i]!, Body: bytes(n, i) }))
    uploaded += n
  }
  let downloaded = 0
  for (const [i, n] of sizes.entries()) {
    const got = await bodyBytes(
      (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: keys[i]! }))).Body,
    )
    t.equal(sha256(got), sha256(bytes(n, i)), `object ${i} reads back`)
    downloaded += got.length
  }
  await s3.send(new ListObjectsV2Command({ Bucket: bucket }))
  const missing = await s3
    .send(new GetObjectCommand({ Bucket: bucket, Key: 'no-such-key' }))
    .catch(s3Fault)
  t.match(missing, { code: 'NoSuchKey', status: 404 })
  const badKey = s3Client(gw.endpoint, {
    credentials: { accessKeyId: 'AKIANOSUCHKEY0000000', secretAccessKey: 'wrong-secret-000000' },
  })
  const refused = await badKey
    .send(new ListObjectsV2Command({ Bucket: bucket }))
    .then(() => ({ status: 200 }), s3Fault)
  badKey.destroy()
  t.equal(refused.status, 403, 'an unknown access key is refused')
  // An anonymous request is denied; its request id must be in an info-level log line.
  const anon = await fetch(`${gw.endpoint}/${bucket}/${keys[0]}`)
  t.equal(anon.status, 403, 'anonymous access is denied')
  const deniedId = anon.headers.get('x-amz-request-id')
  t.ok(deniedId, 'the denied answer carries a request id')

  await t.test('gateway /_tessera/metrics', async (t) => {
    // A body of 1 MiB or more: its MD5 is computed on the digest thread.
    const large = 1536 * 1024
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'secret-key-name-large', Body: bytes(large, 7) }),
    )
    const { samples, text, type } = await scrape(`${base}/metrics`)
    t.match(type, /^text\/plain/, 'Prometheus text')
    const put = { operation: 's3:PutObject', status: '200' }
    t.ok(sum(samples, 'tessera_s3_requests_total', put) >= sizes.length, 'PUTs counted')
    t.ok(
      sum(samples, 'tessera_s3_requests_total', { operation: 's3:GetObject', status: '200' }) >=
        sizes.length,
      'GETs counted',
    )
    t.ok(
      sum(samples, 'tessera_s3_requests_total', { operation: 's3:GetObject', status: '404' }) >= 1,
      'the missing key is counted with its status',
    )
    t.ok(
      sum(samples, 'tessera_s3_requests_total', { operation: 's3:CreateBucket', status: '200' }) >=
        1,
    )
    t.ok(sum(samples, 'tessera_s3_requests_total', { status: '403' }) >= 2, 'refusals counted')
    t.ok(
      sum(samples, 'tessera_s3_request_duration_seconds_count', { operation: 's3:PutObject' }) >=
        sizes.length,
      'PUT durations observed',
    )
    t.ok(
      find(samples, 'tessera_s3_request_duration_seconds_bucket', {
        operation: 's3:PutObject',
        le: '60',
      }).length === 1,
      'the histogram reaches 60 s',
    )
    t.ok(sum(samples, 'tessera_s3_bytes_received_total') >= uploaded, 'bytes received')
    t.ok(sum(samples, 'tessera_s3_bytes_sent_total') >= downloaded, 'bytes sent')
    t.equal(
      find(samples, 'tessera_s3_requests_total').filter((s) =>
        s.labels.operation?.startsWith('tessera:'),
      ).length,
      0,
      'scrapes and probes are not S3 requests',
    )

    for (const node of c.map.pools[0]!.nodes) {
      t.equal(sum(samples, 'tessera_node_up', { node: node.id }), 1, `${node.id} up`)
      for (const drive of node.drives) {
        const labels = { node: node.id, drive }
        t.equal(sum(samples, 'tessera_drive_online', labels), 1, `${node.id} ${drive} online`)
        t.ok(sum(samples, 'tessera_drive_total_bytes', labels) > 0, 'drive size')
        t.equal(find(samples, 'tessera_drive_free_bytes', labels).length, 1, 'drive free bytes')
        t.equal(find(samples, 'tessera_drive_used_bytes', labels).length, 1, 'drive used bytes')
      }
    }
    t.ok(sum(samples, 'tessera_codec_pool_threads') >= 1, 'codec threads')
    t.equal(find(samples, 'tessera_codec_pool_queue_size').length, 1, 'codec queue')
    // The large body went through the digest thread; the smaller ones did not.
    t.equal(sum(samples, 'tessera_digest_bytes_total'), large, 'digest thread bytes')
    t.equal(sum(samples, 'tessera_digest_backlog_bytes'), 0, 'digest backlog drained')
    t.equal(sum(samples, 'tessera_digest_waiting_pieces'), 0, 'no body waits for it now')
    t.equal(find(samples, 'tessera_digest_waits_total').length, 1, 'digest waits counted')
    const util = sum(samples, 'tessera_codec_pool_utilization')
    t.ok(util >= 0 && util <= 1, 'codec utilization is a fraction')
    t.ok(find(samples, 'process_cpu_user_seconds_total').length === 1, 'default process metrics')
    t.ok(find(samples, 'nodejs_eventloop_lag_seconds').length === 1, 'default Node metrics')
    t.notOk(text.includes(bucket), 'no bucket name in any label')
    t.notOk(text.includes('secret-key-name'), 'no key in any label')
    t.notOk(text.includes(ROOT.accessKeyId), 'no access key id')
    t.notOk(text.includes(ROOT.secretAccessKey), 'no secret')
  })

  await t.test('denied and failed requests are logged with their request id', async (t) => {
    let line: Record<string, unknown> | undefined
    for (let i = 0; i < 50 && line === undefined; i++) {
      const log = await readFile(gw.logPath, 'utf8')
      const found = log
        .split('\n')
        .find((l) => l.includes(`"reqId":"${deniedId}"`) && l.includes('"msg":"request"'))
      if (found) line = JSON.parse(found) as Record<string, unknown>
      else await new Promise((r) => setTimeout(r, 100))
    }
    t.match(line, { msg: 'request', status: 403, action: 's3:GetObject', code: 'AccessDenied' })
    t.ok((line?.level as number) >= 30, 'at info or above')
  })

  await t.test('liveness and readiness', async (t) => {
    const live = await getJson(`${base}/health/live`)
    t.same(live, { status: 200, body: { status: 'live' } })
    const ready = await getJson(`${base}/health/ready`)
    t.match(ready, { status: 200, body: { status: 'ready', sets: 2 } })
    const head = await fetch(`${base}/health/ready`, { method: 'HEAD' })
    t.equal(head.status, 200, 'HEAD works for probes too')
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })
    t.equal(post.status, 405, 'only GET and HEAD')
  })

  // Two of the three drives of set 0: below its write quorum of 2. Set 1 keeps all of its own.
  const set0 = c.layout.pools[0]!.sets[0]!
  const victims = set0.drives.slice(0, 2).map((d) => d.nodeId)

  await t.test('readiness names the set that lost its write quorum', async (t) => {
    for (const id of victims) await c.stop(id)
    const { body } = await waitForStatus(`${base}/health/ready`, 503)
    t.match(body, {
      status: 'not ready',
      sets: [{ pool: 0, set: 0, drivesOnline: 1, writeQuorum: 2 }],
    })
    const named = (body as { sets: { set: number; offline: { node: string }[] }[] }).sets
    t.equal(named.length, 1, 'only set 0 lacks its quorum')
    t.same(
      named[0]!.offline.map((o) => o.node).sort(),
      [...victims].sort(),
      'the stopped nodes are named',
    )
    t.equal((await getJson(`${base}/health/live`)).status, 200, 'still live')
    const { samples } = await scrape(`${base}/metrics`)
    for (const id of victims) {
      t.equal(sum(samples, 'tessera_node_up', { node: id }), 0, `${id} down`)
      t.ok(sum(samples, 'tessera_rpc_errors_total', { node: id }) >= 1, `failed calls to ${id}`)
      const drive = c.node(id).drives[0]!
      t.equal(sum(samples, 'tessera_drive_online', { node: id, drive }), 0, `${id}'s drive offline`)
    }
  })

  await t.test('ready again when the nodes are back; a node serves its own metrics', async (t) => {
    // The first victim comes back with a metrics server (port 0: any free one).
    const node = c.node(victims[0]!)
    await appendFile(node.configPath, 'metricsListen: 127.0.0.1:0\n')
    for (const id of victims) await c.start(id)
    await waitForStatus(`${base}/health/ready`, 200)
    t.match(node.metricsEndpoint, /^http:\/\/127\.0\.0\.1:\d+$/)

    t.same(await getJson(`${node.metricsEndpoint}/health/live`), {
      status: 200,
      body: { status: 'live' },
    })
    t.match(await getJson(`${node.metricsEndpoint}/health/ready`), {
      status: 200,
      body: { status: 'ready', drives: 1, drivesOnline: 1 },
    })
    t.equal((await fetch(`${node.metricsEndpoint}/nope`)).status, 404)

    const { samples, type } = await scrape(`${node.metricsEndpoint}/metrics`)
    t.match(type, /^text\/plain/)
    // The gateway's readiness probe reached this node after its restart.
    t.ok(
      sum(samples, 'tessera_node_rpc_total', { rpc: 'GetDriveInfo', outcome: 'ok' }) >= 1,
      'RPCs counted by name and outcome',
    )
    t.ok(
      sum(samples, 'tessera_node_rpc_duration_seconds_count', { rpc: 'GetDriveInfo' }) >= 1,
      'RPCs timed',
    )
    const drive = node.drives[0]!
    t.equal(sum(samples, 'tessera_drive_online', { node: node.id, drive }), 1, 'its drive')
    t.ok(sum(samples, 'tessera_drive_total_bytes', { node: node.id, drive }) > 0)
    t.ok(find(samples, 'process_resident_memory_bytes').length === 1, 'default process metrics')

    t.equal(
      sum(samples, 'tessera_drive_direct_io', { node: node.id, drive }),
      1,
      'its shard files are written with O_DIRECT',
    )

    // The cluster takes writes again through the gateway; a shard write borrows an aligned
    // buffer (allocated 8 at a time) and gives it back.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'after', Body: bytes(50_000, 9) }))
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'after-big', Body: bytes(3 * 1024 * 1024, 10) }),
    )
    const after = (await scrape(`${node.metricsEndpoint}/metrics`)).samples
    t.equal(
      sum(after, 'tessera_direct_write_buffer_bytes', { state: 'allocated' }),
      8 * 1024 * 1024,
      'aligned buffers allocated',
    )
    t.equal(sum(after, 'tessera_direct_write_buffer_bytes', { state: 'lent' }), 0, 'and all back')
    // Those PUTs looked up their keys' versions on the drive: from memory, on the event loop.
    // (A scrape reads the drives at most once a second.)
    const lookups = (s: Sample[]) =>
      sum(s, 'tessera_meta_sync_lookups_total', { node: node.id, drive })
    let later = after
    for (let i = 0; i < 20 && lookups(later) <= lookups(samples); i++) {
      await new Promise((r) => setTimeout(r, 250))
      later = (await scrape(`${node.metricsEndpoint}/metrics`)).samples
    }
    t.ok(lookups(later) > lookups(samples), 'metadata lookups counted')
    // (Whether any went through the thread pool depends on the page cache, which other tests
    // running beside this one may drop: only that they are exported is checked.)
    for (const name of ['tessera_meta_async_lookups_total', 'tessera_meta_slow_lookups_total'])
      t.equal(find(later, name, { node: node.id, drive }).length, 1, `${name} exported`)
  })
})
