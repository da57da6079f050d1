/**
 * A multi-host cluster (issue #7): four hosts made as Linux network namespaces by
 * deploy/netns/netns-cluster.sh, one node per host listening on the host's own address
 * (RS 2+2, one drive each, one erasure set over all four hosts), two gateways and the test in
 * this namespace, across a bridge. One host's link is cut (its packets dropped silently, as
 * with a pulled cable): reads and writes must go on with the three hosts left (write quorum 3),
 * both through a gateway that was connected to the host when its link went (g1) and through one
 * started while it was cut (g2). The link is restored: the host must get what it missed,
 * checked on its drive (records and shard files), in its HealStatus counters, and by reading
 * everything back with two of the other hosts' nodes stopped.
 *
 * What g1 sent to the silent host stays in its TCP connections and is delivered when the link
 * returns, late commits included; g2 never reached the host, so the host can learn of g2's
 * writes only by healing (its scan cycle compares its drive with its peers').
 *
 * Skipped, with the reason, where the machine does not allow network namespaces.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { ErasureLayout } from '@tessera/codec'
import { objectHash } from '@tessera/node'
import {
  type DriveHealState,
  type DriveSlot,
  HealStatus,
  ReadVersions,
  type VersionRecord,
} from '@tessera/protocol'
import t from 'tap'
import { eventually, type TestCluster } from './harness/cluster.ts'
import { makeHosts, NETNS_NODE_PORT, netnsUnavailable, startNetnsCluster } from './harness/netns.ts'
import { bodyBytes, bytes, s3Client, sha256 } from './harness/s3.ts'

const BLOCK = 64 * 1024
const INLINE = 4096
const BUCKET = 'netns-objects'
/** The host whose link is cut; node n3 runs on it. */
const CUT = 3
/**
 * How long one S3 request may take while a host is cut. g1's calls to the silent host end at
 * the gateway's RPC deadline (10 s), and a request may meet it twice (bucket lookup, then the
 * object's records), so this is a bound on liveness, not a latency goal.
 */
const OP_DEADLINE_MS = 30_000
/** How long the cut host may take to get everything once its link is back. */
const CATCH_UP_MS = 40_000
/** How long reading everything back from n3 and n4 may take. */
const READ_BACK_MS = 20_000
/**
 * The scan cycle is how a node that was unreachable (not restarted) learns what it missed:
 * the gateways' repair reports could not reach it. A short pause between cycles keeps the test
 * quick; the default is a minute.
 */
const NODE_SETTINGS = { scanIntervalMs: 2000 }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Obj {
  key: string
  data: Buffer
}

/** An S3 request with a deadline: its outcome and how long it took. */
async function timed<T>(
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<{ ok: true; value: T; ms: number } | { ok: false; error: string; ms: number }> {
  const start = Date.now()
  try {
    const value = await fn(AbortSignal.timeout(OP_DEADLINE_MS))
    return { ok: true, value, ms: Date.now() - start }
  } catch (err) {
    const e = err as Error
    const error =
      e.name === 'AbortError' || e.name === 'TimeoutError'
        ? `no answer within ${OP_DEADLINE_MS} ms`
        : e.message
    return { ok: false, error, ms: Date.now() - start }
  }
}

async function get(s3: S3Client, key: string, signal?: AbortSignal): Promise<Buffer> {
  const r = await s3.send(
    new GetObjectCommand({ Bucket: BUCKET, Key: key }),
    signal ? { abortSignal: signal } : {},
  )
  return bodyBytes(r.Body)
}

async function put(s3: S3Client, o: Obj, signal?: AbortSignal): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: o.key, Body: o.data }),
    signal ? { abortSignal: signal } : {},
  )
}

async function listKeys(s3: S3Client, signal?: AbortSignal): Promise<string[]> {
  const keys: string[] = []
  let token: string | undefined
  do {
    const r = await s3.send(
      new ListObjectsV2Command({
        Bucket: BUCKET,
        ...(token ? { ContinuationToken: token } : {}),
      }),
      signal ? { abortSignal: signal } : {},
    )
    for (const o of r.Contents ?? []) keys.push(o.Key!)
    token = r.IsTruncated ? r.NextContinuationToken : undefined
  } while (token)
  return keys
}

function driveOf(c: TestCluster, nodeId: string): DriveSlot {
  return c.layout.pools[0]!.sets[0]!.drives.find((d) => d.nodeId === nodeId)!
}

async function healState(c: TestCluster, d: DriveSlot): Promise<DriveHealState> {
  const r = await c.pool.call(c.peer(d.nodeId), HealStatus, {}, { timeoutMs: 3000 })
  return r.drives.find((x) => x.slot === d.slot)!
}

async function versionsOn(c: TestCluster, d: DriveSlot, key: string): Promise<VersionRecord[]> {
  const ref = { pool: d.pool, set: d.set, slot: d.slot }
  const r = await c.pool.call(
    c.peer(d.nodeId),
    ReadVersions,
    { ...ref, bucket: BUCKET, key },
    { timeoutMs: 3000 },
  )
  return r.versions
}

/** Whether drive `d` holds `o` whole: its record, and its shard inline or as a file of the right size. */
async function holds(
  c: TestCluster,
  d: DriveSlot,
  o: Obj,
  layout: ErasureLayout,
): Promise<boolean> {
  const want = layout.shardFileBytes(o.data.length)
  const v = (await versionsOn(c, d, o.key)).find((x) => x.size === o.data.length)
  if (v === undefined) return false
  if (v.dataDir === undefined) return v.inline?.length === want
  const h = objectHash(BUCKET, o.key)
  const file = join(d.path, 'data', BUCKET, h.slice(0, 2), h, v.dataDir, 'part.1')
  return (await stat(file).catch(() => undefined))?.size === want
}

const unavailable = await netnsUnavailable()

t.test(
  'four hosts in network namespaces: a cut link, quorum, and catch-up',
  { ...(unavailable ? { skip: unavailable } : {}), timeout: 180_000 },
  async (t) => {
    const started = Date.now()
    const hosts = await makeHosts(t, 4)
    const c = await startNetnsCluster(t, hosts, {
      k: 2,
      m: 2,
      gateways: 2,
      nodeConfig: NODE_SETTINGS,
    })
    const layout = new ErasureLayout({ k: 2, m: 2, blockSize: BLOCK })
    t.same(
      c.map.pools[0]!.nodes.map((n) => n.address),
      [1, 2, 3, 4].map((i) => `${hosts.address(i)}:${NETNS_NODE_PORT}`),
      'every node listens on its own host',
    )
    t.same(
      await Promise.all(c.nodes.map((n) => hosts.namespaceOf(n.child!.pid!))),
      [1, 2, 3, 4].map((i) => hosts.ns(i)),
      'every node runs in the namespace of its host',
    )
    await c.stop('g2') // started again while the link is cut
    const s3 = s3Client(c.gateways[0]!.endpoint)
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }))

    // Before the cut: objects inline (below 4 KiB) and with shard files, one set of 4 drives.
    const before: Obj[] = [0, 1000, 3000, 70_000, 200_000, 300_000].map((size, i) => ({
      key: `before/${i}`,
      data: bytes(size, i + 1),
    }))
    for (const o of before) await put(s3, o)
    const cutDrive = driveOf(c, `n${CUT}`)
    // The test's connections to every node are made now, while every link is up, and carry
    // nothing while the link is cut.
    const healedBefore = await healState(c, cutDrive)
    for (const id of ['n1', 'n2', 'n4']) await healState(c, driveOf(c, id))
    t.pass(`${before.length} objects written on 4 hosts (${Date.now() - started} ms from start)`)

    await hosts.cut(CUT)
    const cutAt = Date.now()
    const writes = (gw: string, seed: number): Obj[] => [
      ...[0, 1, 2].map((i) => ({
        key: `during/${gw}/small-${i}`,
        data: bytes(1000 + i, seed + i),
      })),
      ...[0, 1].map((i) => ({
        key: `during/${gw}/large-${i}`,
        data: bytes(150_000 + i, seed + 10 + i),
      })),
    ]
    const viaG1 = writes('g1', 100)
    const viaG2 = writes('g2', 200)
    // Every request at once: g1's meet the silent host's RPC deadline at the same time, and g2
    // starts meanwhile.
    const g1Phase = () =>
      Promise.all([
        Promise.all(before.map((o) => timed((signal) => get(s3, o.key, signal)))),
        Promise.all(viaG1.map((o) => timed((signal) => put(s3, o, signal)))),
        timed((signal) => listKeys(s3, signal)),
      ])
    const g2Phase = async () => {
      await c.local.start('g2')
      const startedIn = Date.now() - cutAt
      const s3b = s3Client(c.gateways[1]!.endpoint)
      const [reads, writes] = await Promise.all([
        Promise.all(before.map((o) => timed((signal) => get(s3b, o.key, signal)))),
        Promise.all(viaG2.map((o) => timed((signal) => put(s3b, o, signal)))),
      ])
      return { s3b, startedIn, reads, writes }
    }
    const [[reads1, writes1, listed], { s3b, startedIn, reads: reads2, writes: writes2 }] =
      await Promise.all([g1Phase(), g2Phase()])
    t.pass(`g2 started with host ${CUT} cut (${startedIn} ms)`)
    for (const [gw, reads] of [
      ['g1', reads1],
      ['g2', reads2],
    ] as const) {
      for (const [i, o] of before.entries()) {
        const r = reads[i]!
        t.ok(r.ok, `${gw}: GET ${o.key} (${o.data.length} B) with host ${CUT} cut: ${r.ms} ms`, {
          ...(r.ok ? {} : { error: r.error }),
        })
        if (r.ok) t.equal(sha256(r.value), sha256(o.data), `${o.key}: the right bytes`)
      }
    }
    t.ok(listed.ok, `g1: LIST with host ${CUT} cut: ${listed.ms} ms`, {
      ...(listed.ok ? {} : { error: listed.error }),
    })
    if (listed.ok) {
      const want = before.map((o) => o.key)
      t.same(
        listed.value.filter((k) => want.includes(k)),
        want,
        'the listing has every object written before the cut',
      )
    }
    const acknowledged: Obj[] = []
    for (const [gw, objs, results] of [
      ['g1', viaG1, writes1],
      ['g2', viaG2, writes2],
    ] as const) {
      for (const [i, o] of objs.entries()) {
        const w = results[i]!
        if (w.ok) acknowledged.push(o)
        const streamed = o.data.length >= INLINE
        // A streamed PUT on a connection to the silent host goes on without it once the write
        // quorum has the data and that drive made no progress for STALL_MS, or the host sent
        // nothing for SILENT_MS.
        t.ok(
          w.ok,
          `${gw}: PUT ${o.key} (${o.data.length} B${streamed ? ', streamed' : ''}) with host ${CUT} cut: ${w.ms} ms`,
          w.ok ? {} : { error: w.error },
        )
      }
    }
    t.comment(`host ${CUT} was cut for ${Date.now() - cutAt} ms`)

    await hosts.restore(CUT)
    const restoredAt = Date.now()
    for (const o of acknowledged) {
      await eventually(
        `${o.key} reaches n${CUT}`,
        async () => ((await holds(c, cutDrive, o, layout)) ? true : undefined),
        Math.max(1000, CATCH_UP_MS - (Date.now() - restoredAt)),
      )
    }
    t.pass(
      `n${CUT} holds all ${acknowledged.length} objects written while it was cut, ` +
        `${Date.now() - restoredAt} ms after its link came back`,
    )
    const healedByScan = acknowledged.filter((o) => viaG2.includes(o)).length
    t.ok(healedByScan > 0, 'g2 wrote objects that only healing can bring to the host')
    const healed = await healState(c, cutDrive)
    t.ok(
      healed.healed - healedBefore.healed >= healedByScan,
      `HealStatus counts the repairs: ${healedBefore.healed} → ${healed.healed} ` +
        `(g2 wrote ${healedByScan})`,
    )
    for (const o of before) {
      t.ok(await holds(c, cutDrive, o, layout), `n${CUT} still holds ${o.key}`)
    }

    // Only n3 and n4 left: every object needs n3's shards, so they must be complete. Read
    // through g2, whose connections to n3 were made after the link came back.
    await Promise.all([c.stop('n1', 'SIGKILL'), c.stop('n2', 'SIGKILL')])
    const readBackAt = Date.now()
    const everything = [...before, ...acknowledged]
    for (const o of everything) {
      const got = await eventually(
        `${o.key} reads from n${CUT} and n4`,
        () => get(s3b, o.key),
        Math.max(1000, READ_BACK_MS - (Date.now() - readBackAt)),
      )
      t.equal(sha256(got), sha256(o.data), `${o.key} reads from n${CUT} and n4`)
    }
    const all = everything.map((o) => o.key).sort()
    t.same(
      (await listKeys(s3b)).filter((k) => all.includes(k)),
      all,
      `LIST from n${CUT} and n4 has every object written, once`,
    )
    t.comment(`read back with n1 and n2 stopped in ${Date.now() - readBackAt} ms`)
    t.comment(`whole test ${Date.now() - started} ms`)
  },
)
