/**
 * Whole-cluster S3 request figures: every gateway pushes its request counters to every node
 * (ReportGatewayStats), the nodes keep each gateway's newest snapshot under its authenticated
 * public id, and `GET /_tessera/admin/v1/requests` on any gateway merges what the nodes hold.
 * A real cluster of 2 nodes and 2 gateways: known requests to each gateway show up in the
 * answer of the other; the route is refused to a project-scoped user; a node keeps nothing from
 * a peer that is not a gateway of the map and files a snapshot under the caller's key whatever
 * the payload says; a stopped gateway's snapshot stops advancing.
 */
import { join } from 'node:path'
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import type { GatewayRequestsView } from '@tessera/gateway'
import {
  type GatewayRequestStats,
  GatewayStats,
  loadIdentity,
  mapHash,
  PeerPool,
  PROTOCOL_VERSION,
  ReportGatewayStats,
} from '@tessera/protocol'
import t from 'tap'
import { adminCall, createProject, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { s3Client, s3Fault } from './harness/s3.ts'

/** One gateway in GET /requests' answer, as the gateway types it. */
type GatewayView = GatewayRequestsView

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('GET /requests: every gateway’s request counters, as the nodes hold them', async (t) => {
  const cluster = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 2 })
  const [g1, g2] = cluster.gateways as [(typeof cluster.gateways)[0], (typeof cluster.gateways)[0]]
  const s1 = s3Client(g1.endpoint)
  const s2 = s3Client(g2.endpoint)
  await s1.send(new CreateBucketCommand({ Bucket: 'traffic' }))
  await s1.send(new PutObjectCommand({ Bucket: 'traffic', Key: 'k', Body: 'hello' }))

  let polls = 0
  /** For each snapshot of gateway 2 (by its `at`), the number of the first poll that saw it. */
  const firstSeen = new Map<string, number>()
  /** GET /requests on gateway 2. */
  const requests = async (): Promise<{ at: string; gateways: GatewayView[] }> => {
    const n = ++polls
    const r = await adminCall(g2.endpoint, ROOT, 'GET', '/requests')
    if (r.status !== 200) throw new Error(`GET /requests: ${r.status} ${JSON.stringify(r.body)}`)
    const own = (r.body as { gateways: GatewayView[] }).gateways.find((g) => g.id === g2.publicKey)
    if (own && !firstSeen.has(own.at)) firstSeen.set(own.at, n)
    return r.body
  }
  /** Polls until both gateways report a snapshot taken after `since` (epoch ms). */
  const both = async (since: number): Promise<Map<string, GatewayView>> => {
    let last: { gateways: GatewayView[] } | undefined
    for (let i = 0; i < 120; i++) {
      last = await requests()
      const by = new Map(last.gateways.map((g) => [g.id, g]))
      const a = by.get(g1.publicKey)
      const b = by.get(g2.publicKey)
      if (a && b && Date.parse(a.at) > since && Date.parse(b.at) > since) return by
      await sleep(250)
    }
    throw new Error(`both gateways did not report after ${since}: ${JSON.stringify(last)}`)
  }

  // Baseline: snapshots taken after the set-up requests above.
  const base = await both(Date.now())
  const base1 = base.get(g1.publicKey)!
  const base2 = base.get(g2.publicKey)!
  t.ok(Date.parse(base1.startedAt) <= Date.parse(base1.at), 'startedAt is before the snapshot')
  t.same(
    base1.buckets.map(([le]) => le),
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    'the histogram has the Prometheus bucket bounds',
  )
  t.ok(base1.requests >= 2, `gateway 1 counted the set-up requests (${base1.requests})`)

  // 30 requests to gateway 1, 5 of them 404s; 10 to gateway 2.
  for (let i = 0; i < 10; i++) {
    await s1.send(new PutObjectCommand({ Bucket: 'traffic', Key: `o${i}`, Body: `v${i}` }))
  }
  for (let i = 0; i < 15; i++) {
    await s1.send(new GetObjectCommand({ Bucket: 'traffic', Key: `o${i % 10}` }))
  }
  for (let i = 0; i < 5; i++) {
    const err = await s1
      .send(new HeadObjectCommand({ Bucket: 'traffic', Key: `missing-${i}` }))
      .catch((e: unknown) => e)
    t.equal(s3Fault(err).status, 404, 'a missing key is a 404')
  }
  for (let i = 0; i < 10; i++) {
    await s2.send(new HeadObjectCommand({ Bucket: 'traffic', Key: 'k' }))
  }
  const sent = Date.now()
  const after = await both(sent)
  const a1 = after.get(g1.publicKey)!
  const a2 = after.get(g2.publicKey)!
  t.equal(a1.requests - base1.requests, 30, 'gateway 1 counted exactly its 30 requests')
  t.equal(a1.durationCount - base1.durationCount, 30, 'and timed each of them')
  t.equal(a1.errors.client - base1.errors.client, 5, 'the 5 answered 404 are client errors')
  t.equal(a1.errors.server, base1.errors.server, 'and none were server errors')
  t.equal(a1.startedAt, base1.startedAt, 'same run of gateway 1')
  t.ok(a1.durationSum > base1.durationSum, 'the duration sum grew')
  // Gateway 2 also answered this test's GET /requests calls (admin requests count too): those
  // that completed after its baseline snapshot was taken, which are the polls from the first
  // one that saw that snapshot on, plus at most one that completed while it was on its way to
  // the nodes.
  const extra = a2.requests - base2.requests - 10
  const since = polls - firstSeen.get(base2.at)! + 2
  t.ok(
    extra >= 0 && extra <= since,
    `gateway 2 counted its 10 requests (+${extra} of at most ${since} GET /requests since)`,
  )
  for (const g of [a1, a2]) {
    const counts = g.buckets.map(([, n]) => n)
    t.ok(
      counts.every((n, i) => i === 0 || n >= counts[i - 1]!),
      'buckets are cumulative',
    )
    t.ok((counts[counts.length - 1] ?? 0) <= g.durationCount, 'and within the count')
  }

  await t.test('refused to a project-scoped user', async (t) => {
    await createProject(g2.endpoint, ROOT, 'alpha')
    const creds = await createUserWithKey(g2.endpoint, ROOT, 'ops', 'alpha', [{ role: 's3-admin' }])
    const r = await adminCall(g2.endpoint, creds, 'GET', '/requests')
    t.equal(r.status, 403)
    t.equal(r.body?.error?.code, 'AccessDenied')
    t.ok(r.body?.error?.message, 'with a message')
    const q = await adminCall(g2.endpoint, ROOT, 'GET', '/requests?x=1')
    t.equal(q.status, 400, 'an unknown query parameter is refused')
  })

  await t.test('nodes file snapshots under the caller’s key, gateways only', async (t) => {
    const hash = mapHash(cluster.map)
    const n1 = cluster.node('n1')
    const n2 = cluster.peer('n2')
    const snapshot: GatewayRequestStats = {
      startedAt: Date.now(),
      at: Date.now(),
      requests: 7,
      durationSum: 0.5,
      durationCount: 7,
      buckets: [[0.1, 7]],
      errors: { client: 0, server: 0 },
    }
    // Node n1 calling node n2: nodes may call each other, but not report as a gateway.
    const nodePool = new PeerPool({
      identity: await loadIdentity(join(n1.home, 'node.key')),
      hello: { version: PROTOCOL_VERSION, mapHash: hash, role: 'node' },
    })
    t.teardown(() => nodePool.close())
    const fromNode = await nodePool.call(n2, ReportGatewayStats, snapshot)
    t.same(fromNode, { accepted: false }, 'a node’s snapshot is not accepted')
    // The test's own identity is a gateway of the map; the payload names another id.
    const forged = { ...snapshot, id: g1.publicKey } as GatewayRequestStats
    const fromGateway = await cluster.pool.call(n2, ReportGatewayStats, forged)
    t.same(fromGateway, { accepted: true }, 'a gateway’s snapshot is accepted')
    const held = await cluster.pool.call(n2, GatewayStats, {})
    const ids = held.gateways.map((g) => g.id)
    t.notOk(ids.includes(n1.publicKey), 'nothing is held under the node’s key')
    const mine = held.gateways.find((g) => g.id === cluster.gateway.id)
    t.equal(mine?.requests, 7, 'the snapshot is held under the caller’s own key')
    const g1Held = held.gateways.find((g) => g.id === g1.publicKey)
    t.not(g1Held?.requests, 7, 'not under the id the payload named')
    const bad = await cluster.pool
      .call(n2, ReportGatewayStats, { ...snapshot, requests: -1 })
      .catch((e: unknown) => e)
    t.equal((bad as { code?: string }).code, 'INVALID_REQUEST', 'a malformed snapshot is refused')
  })

  await t.test('a stopped gateway’s snapshot stops advancing', async (t) => {
    await cluster.stop(g1.id)
    const stopped = Date.now()
    // Wait for gateway 2 to report twice after the stop: a push of gateway 1 would be in by then.
    let now: { gateways: GatewayView[] } | undefined
    let g2Now: GatewayView | undefined
    for (let i = 0; i < 120; i++) {
      now = await requests()
      g2Now = now.gateways.find((g) => g.id === g2.publicKey)
      if (g2Now && Date.parse(g2Now.at) > stopped + 5000) break
      await sleep(250)
    }
    t.ok(g2Now && Date.parse(g2Now.at) > stopped + 5000, 'gateway 2 keeps reporting')
    const g1Now = now?.gateways.find((g) => g.id === g1.publicKey)
    t.ok(g1Now, 'the stopped gateway is still listed within the minute')
    t.ok(
      g1Now && Date.parse(g1Now.at) <= stopped,
      `gateway 1’s snapshot is from before it stopped (${g1Now?.at})`,
    )
    t.equal(g1Now?.requests, a1.requests, 'with the counts it had')
  })
})
