/**
 * Faults while under load, and proof that nothing acknowledged is lost (issue #6).
 *
 * Workers PUT, GET, DELETE and run multipart uploads through two gateways while an injector,
 * at random, kills nodes with SIGKILL and restarts them, pauses one with SIGSTOP past the RPC
 * deadline, wipes a drive folder (a drive swap), and flips bytes in shard files. Destructive
 * faults (wipe, flip) wait until what earlier faults took is healed (whole-drive heals, the
 * catch-up pass of a node back from a kill or a pause, the deep scan after a flip), so no set
 * ever loses more than its parity — the tolerance the design promises. At the end every acknowledged write is
 * read back and checked against its SHA-256, every acknowledged delete is still deleted, and
 * after healing settles every object has all n shards on its drives, each chunk verified.
 *
 * The short form runs in CI (30 s of load, every kind of fault at least once). TESSERA_FAULT_MINUTES=30 runs the long one.
 */
import { createHash, randomBytes } from 'node:crypto'
import { open, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { objectHash } from '@tessera/node'
import {
  type DriveHealState,
  HealStatus,
  placeObject,
  ReadShard,
  ReadVersions,
  StartHeal,
} from '@tessera/protocol'
import t from 'tap'
import { startCluster, type TestCluster } from './harness/cluster.ts'
import { bodyBytes, s3Client, s3Fault } from './harness/s3.ts'

const MINUTES = Number(process.env.TESSERA_FAULT_MINUTES ?? 0)
const LOAD_MS = MINUTES > 0 ? MINUTES * 60_000 : 30_000
const WORKERS = 6
const BUCKET = 'faults'
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!

type State = 'present' | 'deleted' | 'maybe-present' | 'maybe-deleted'
interface Entry {
  sha: string
  size: number
  state: State
}

interface Stats {
  puts: number
  gets: number
  deletes: number
  multiparts: number
  failedOps: number
  wrongReads: string[]
  faults: Record<string, number>
}

/** Every drive's heal state, from every node that answers. */
async function healStates(c: TestCluster): Promise<DriveHealState[]> {
  const out: DriveHealState[] = []
  for (const n of c.nodes) {
    try {
      const r = await c.pool.call(c.peer(n.id), HealStatus, {}, { timeoutMs: 3000 })
      out.push(...r.drives)
    } catch {}
  }
  return out
}

/**
 * Drives (by path) that must finish a whole pass started after the given time before they
 * count as whole: a restarted or resumed node's drives (the catch-up pass finds the writes they
 * missed), a drive with a flipped byte (the deep scan asked for finds it). `watchPasses` drops
 * an entry once the drive is seen between passes with such a pass behind it.
 */
const passAfter = new Map<string, number>()

/** Whether `d` finished a whole pass (lastCycleAt moves only for those) started at `since`. */
const passedSince = (d: DriveHealState, since: number) =>
  d.startedAt !== undefined &&
  d.startedAt >= since &&
  d.lastCycleAt !== undefined &&
  d.lastCycleAt >= d.startedAt

function prunePassAfter(states: DriveHealState[]): void {
  for (const d of states) {
    const since = passAfter.get(d.path)
    if (since !== undefined && passedSince(d, since)) passAfter.delete(d.path)
  }
}

/** Polls heal states until `until` resolves, keeping `passAfter` current. */
async function watchPasses(c: TestCluster, until: () => boolean): Promise<void> {
  while (!until()) {
    prunePassAfter(await healStates(c))
    await sleep(500)
  }
}

/**
 * Waits until no drive is healing and no repair is queued, every drive in `passAfter` has
 * finished its pass, and, with `passSince`, until every drive has finished a whole pass that
 * started at or after it; the time it took, or undefined after `limitMs` (with what was still
 * busy in `busyAtEnd`).
 */
async function settle(
  c: TestCluster,
  limitMs: number,
  passSince?: number,
): Promise<number | undefined> {
  const start = Date.now()
  let calm = 0
  let busy: DriveHealState[] = []
  const passDone = (d: DriveHealState) =>
    (passSince === undefined || passedSince(d, passSince)) && !passAfter.has(d.path)
  while (Date.now() - start < limitMs) {
    const states = await healStates(c)
    prunePassAfter(states)
    busy = states.filter((d) => d.state === 'healing' || d.queued > 0 || !passDone(d))
    const all = states.length === c.nodes.reduce((a, n) => a + n.drives.length, 0)
    calm = all && busy.length === 0 ? calm + 1 : 0
    if (calm >= 3) return Date.now() - start
    await sleep(300)
  }
  busyAtEnd = busy.map(
    (d) =>
      `${d.path}: ${d.state}, ${d.queued} queued, ${d.waiting ?? 0} waiting, ` +
      `${d.done ?? '?'}/${d.total ?? '?'} done, pass started ${d.startedAt ?? '?'}, ` +
      `last ended ${d.lastCycleAt ?? '?'}, pass wanted after ${passAfter.get(d.path) ?? '-'}`,
  )
  return undefined
}
let busyAtEnd: string[] = []

/** Flips one byte inside the first chunk of a random shard file on `drive`; false if none. */
async function flipAByte(drive: string): Promise<boolean> {
  const files: string[] = []
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (files.length > 200 || depth > 6) return
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name)
      if (e.isDirectory()) await walk(p, depth + 1)
      else if (e.name.startsWith('part.')) files.push(p)
    }
  }
  await walk(join(drive, 'data'), 0)
  if (files.length === 0) return false
  const f = await open(pick(files), 'r+')
  try {
    const { size } = await f.stat()
    if (size <= 9) return false
    const at = 8 + Math.floor(Math.random() * Math.min(size - 8, 4096))
    const b = Buffer.alloc(1)
    await f.read(b, 0, 1, at)
    b[0] = b[0]! ^ 0x5a
    await f.write(b, 0, 1, at)
  } finally {
    await f.close()
  }
  return true
}

t.test('no acknowledged byte is lost under faults', async (t) => {
  const c = await startCluster(t, {
    nodes: 4,
    drivesPerNode: 2,
    k: 2,
    m: 2,
    gateways: 2,
    blockSize: 64 * 1024,
  })
  const clients: S3Client[] = c.gateways.map((g) =>
    s3Client(g.endpoint, { requestHandler: { requestTimeout: 30_000 } as never }),
  )
  await clients[0]!.send(new CreateBucketCommand({ Bucket: BUCKET }))
  const manifest = new Map<string, Entry>()
  const stats: Stats = {
    puts: 0,
    gets: 0,
    deletes: 0,
    multiparts: 0,
    failedOps: 0,
    wrongReads: [],
    faults: { kill: 0, pause: 0, wipe: 0, flip: 0, skipped: 0 },
  }
  let counter = 0
  const deadline = Date.now() + LOAD_MS
  const present = () => [...manifest].filter(([, e]) => e.state === 'present').map(([k]) => k)

  const worker = async (w: number) => {
    while (Date.now() < deadline) {
      const s3 = clients[(w + counter) % clients.length]!
      const roll = Math.random()
      try {
        if (roll < 0.5 || manifest.size < 10) {
          const key = `o/${w}/${counter++}`
          const size = pick([100, 3000, 70_000, 300_000, 1_200_000])
          const body = randomBytes(size)
          const e: Entry = { sha: sha(body), size, state: 'maybe-present' }
          manifest.set(key, e)
          await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }))
          e.state = 'present'
          stats.puts++
        } else if (roll < 0.8) {
          const key = pick(present())
          const e = manifest.get(key)!
          const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))
          const got = sha(await bodyBytes(r.Body))
          // A read during faults may fail (503), but it may never return other bytes.
          if (got !== e.sha && e.state === 'present') stats.wrongReads.push(key)
          stats.gets++
        } else if (roll < 0.95) {
          const key = pick(present())
          const e = manifest.get(key)!
          e.state = 'maybe-deleted'
          await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }))
          e.state = 'deleted'
          stats.deletes++
        } else {
          const key = `mp/${w}/${counter++}`
          const parts = [randomBytes(5 * 1024 * 1024), randomBytes(700_000)]
          const all = Buffer.concat(parts)
          const e: Entry = { sha: sha(all), size: all.length, state: 'maybe-present' }
          manifest.set(key, e)
          const { UploadId } = await s3.send(
            new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }),
          )
          const etags: string[] = []
          for (let i = 0; i < parts.length; i++) {
            const r = await s3.send(
              new UploadPartCommand({
                Bucket: BUCKET,
                Key: key,
                UploadId,
                PartNumber: i + 1,
                Body: parts[i],
              }),
            )
            etags.push(r.ETag!)
          }
          await s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: BUCKET,
              Key: key,
              UploadId,
              MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
            }),
          )
          e.state = 'present'
          stats.multiparts++
        }
      } catch {
        stats.failedOps++
        await sleep(50)
      }
    }
  }

  const injector = async () => {
    await sleep(2000)
    let paused = false
    // Every kind of fault at least once, then at random (the pause, 11 s, once in the short form).
    const first = ['pause', 'wipe', 'kill', 'flip']
    while (first.length > 0 || Date.now() < deadline - 3000) {
      const node = pick(c.nodes)
      const kind =
        first.shift() ??
        pick(['kill', 'kill', 'wipe', 'flip', 'flip', ...(paused ? [] : ['pause'])])
      // Writes a stopped or frozen node missed lack its shards until its catch-up pass.
      const missedSince = () => {
        const at = Date.now()
        for (const d of node.drives) passAfter.set(d, at)
      }
      if (kind === 'kill') {
        await c.stop(node.id, 'SIGKILL')
        await sleep(500 + Math.random() * 1500)
        missedSince()
        await c.start(node.id)
      } else if (kind === 'pause') {
        // Past the gateways' 10 s RPC deadline; once in the short form.
        paused = MINUTES === 0
        const pid = node.child!.pid!
        process.kill(pid, 'SIGSTOP')
        await sleep(11_000)
        missedSince()
        process.kill(pid, 'SIGCONT')
      } else {
        // Destructive faults stay within the parity: whatever earlier faults took (a drive, a
        // flipped byte, writes a node missed while away) is healed first. Under a long load
        // that can outlast the wait: then this fault is skipped.
        const left = deadline - Date.now()
        if ((await settle(c, Math.max(left, 120_000))) === undefined) {
          stats.faults.skipped = (stats.faults.skipped ?? 0) + 1
          continue
        }
        if (kind === 'wipe') {
          const drive = pick(node.drives)
          await c.stop(node.id)
          await rm(drive, { recursive: true, force: true })
          missedSince()
          await c.start(node.id)
        } else {
          const drive = pick(node.drives)
          if (!(await flipAByte(drive))) continue
          // The deep scan is what finds a flipped byte no one reads; run it now, not in hours.
          const slot = c.layout.pools[0]!.sets.flatMap((s) => s.drives).find(
            (d) => d.path === drive,
          )!
          passAfter.set(drive, Date.now())
          await c.pool.call(c.peer(node.id), StartHeal, {
            pool: slot.pool,
            set: slot.set,
            slot: slot.slot,
            mode: 'deep',
          })
        }
      }
      stats.faults[kind]!++
      await sleep(1000 + Math.random() * 2000)
    }
  }

  let loadDone = false
  const load = Promise.all([
    ...Array.from({ length: WORKERS }, (_, w) => worker(w)),
    injector(),
  ]).finally(() => {
    loadDone = true
  })
  await Promise.all([load, watchPasses(c, () => loadDone)])
  const loadEnd = Date.now()

  // Every node up, then a deep scan everywhere, then wait for calm.
  for (const n of c.nodes)
    if (!n.child || n.child.exitCode !== null) await c.start(n.id).catch(() => {})
  await sleep(500)
  // The deep scans asked for now are what make every object whole: settle waits for them to end.
  const deepFrom = Date.now()
  for (const set of c.layout.pools[0]!.sets) {
    for (const d of set.drives) {
      await c.pool.call(c.peer(d.nodeId), StartHeal, {
        pool: d.pool,
        set: d.set,
        slot: d.slot,
        mode: 'deep',
      })
    }
  }
  const settled = await settle(c, MINUTES > 0 ? 45 * 60_000 : 300_000, deepFrom)
  if (settled === undefined) throw new Error(`healing did not settle: ${busyAtEnd.join('; ')}`)
  const toHealth = Date.now() - loadEnd

  // Acknowledged writes read back exactly; acknowledged deletes stay deleted.
  let verified = 0
  const lost: string[] = []
  const resurrected: string[] = []
  for (const [key, e] of manifest) {
    const s3 = pick(clients)
    let got: string | undefined
    try {
      const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))
      got = sha(await bodyBytes(r.Body))
    } catch (err) {
      const f = s3Fault(err)
      if (f.code !== 'NoSuchKey') throw new Error(`reading ${key}: ${f.code} ${f.message}`)
    }
    if (e.state === 'present') {
      if (got !== e.sha) lost.push(key)
      else verified++
    } else if (e.state === 'deleted') {
      if (got !== undefined) resurrected.push(key)
    } else if (got !== undefined && got !== e.sha) lost.push(`${key} (unacknowledged, wrong bytes)`)
  }

  // After healing, every present object has all n shards, each chunk verified on its node.
  const incompleteKeys: string[] = []
  for (const [key, e] of manifest) {
    if (e.state !== 'present') continue
    const { set, distribution } = placeObject(c.layout, 0, BUCKET, key)
    let intact = 0
    for (const slot of distribution) {
      const d = set.drives[slot]!
      const ref = { pool: d.pool, set: d.set, slot: d.slot }
      try {
        const { versions } = await c.pool.call(c.peer(d.nodeId), ReadVersions, {
          ...ref,
          bucket: BUCKET,
          key,
          limit: 1,
        })
        const v = versions[0]
        if (v === undefined || v.deleteMarker) continue
        if (v.dataDir !== undefined) {
          for (const part of v.parts) {
            const blocks = Math.max(1, Math.ceil(part.size / v.erasure.blockSize))
            const { body } = await c.pool.callStream(c.peer(d.nodeId), ReadShard, {
              ...ref,
              bucket: BUCKET,
              key,
              dataDir: v.dataDir,
              part: part.number,
              size: part.size,
              k: v.erasure.k,
              blockSize: v.erasure.blockSize,
              firstBlock: 0,
              lastBlock: blocks - 1,
            })
            for await (const _ of body) {
            }
          }
        } else if (v.inline === undefined) continue
        intact++
      } catch {}
    }
    if (intact < distribution.length) incompleteKeys.push(key)
  }

  // What the set's drives hold of the first few lost or not fully healed objects: records, and
  // the files in each record's data folder, to tell a lost record from lost data.
  for (const [what, keys] of [
    ['lost', lost],
    ['not fully healed', incompleteKeys],
  ] as const) {
    for (const key of keys.slice(0, 5)) {
      const k = key.split(' ')[0]!
      const { set, distribution } = placeObject(c.layout, 0, BUCKET, k)
      const h = objectHash(BUCKET, k)
      const held: string[] = []
      for (const slot of distribution) {
        const d = set.drives[slot]!
        try {
          const { versions } = await c.pool.call(c.peer(d.nodeId), ReadVersions, {
            pool: d.pool,
            set: d.set,
            slot: d.slot,
            bucket: BUCKET,
            key: k,
          })
          const copies: string[] = []
          for (const v of versions) {
            const files =
              v.dataDir === undefined
                ? 'inline'
                : `${(await readdir(join(d.path, 'data', BUCKET, h.slice(0, 2), h, v.dataDir)).catch(() => [])).length} files`
            copies.push(
              `${v.modTime}${v.deleteMarker ? ' marker' : ''} index ${v.erasure.index} ${files}`,
            )
          }
          held.push(`slot ${slot}: [${copies.join('; ')}]`)
        } catch (err) {
          held.push(`slot ${slot}: ${(err as Error).message}`)
        }
      }
      t.comment(`${what} ${k} (${manifest.get(k)?.size} B): ${held.join(' | ')}`)
    }
  }

  const summary = {
    loadSeconds: Math.round(LOAD_MS / 1000),
    operations: stats.puts + stats.gets + stats.deletes + stats.multiparts,
    puts: stats.puts,
    gets: stats.gets,
    deletes: stats.deletes,
    multiparts: stats.multiparts,
    failedOps: stats.failedOps,
    faults: stats.faults,
    objectsVerified: verified,
    objectsLost: lost.length,
    deletesResurrected: resurrected.length,
    objectsNotFullyHealed: incompleteKeys.length,
    secondsToFullHealth: Math.round(toHealth / 100) / 10,
  }
  t.comment(`fault run: ${JSON.stringify(summary)}`)
  process.stdout.write(`# ${JSON.stringify({ faultRun: summary })}\n`)
  t.ok(summary.operations > 50, 'the load ran')
  for (const kind of ['kill', 'pause', 'wipe', 'flip']) {
    t.ok(stats.faults[kind]! >= 1, `${kind} faults were injected`)
  }
  t.same(stats.wrongReads, [], 'no read returned other bytes')
  t.same(lost, [], 'objects lost: 0')
  t.same(resurrected, [], 'every acknowledged delete stayed deleted')
  t.same(incompleteKeys, [], 'after healing every object has all n shards intact')
})

t.test(
  'beyond the parity: clear 503s, nothing corrupted, all back when drives return',
  async (t) => {
    const c = await startCluster(t, { nodes: 4, drivesPerNode: 1, k: 2, m: 2, gateways: 1 })
    const s3 = s3Client(c.gateways[0]!.endpoint)
    await s3.send(new CreateBucketCommand({ Bucket: 'edge' }))
    const bodies = new Map<string, Buffer>()
    for (let i = 0; i < 6; i++) {
      const b = randomBytes(100_000 + i)
      bodies.set(`k${i}`, b)
      await s3.send(new PutObjectCommand({ Bucket: 'edge', Key: `k${i}`, Body: b }))
    }
    // Three of four drives gone: more than m = 2.
    for (const n of c.nodes.slice(1)) await c.stop(n.id, 'SIGKILL')
    const read = await s3
      .send(new GetObjectCommand({ Bucket: 'edge', Key: 'k0' }))
      .catch((e: unknown) => s3Fault(e))
    t.match(read, { status: 503 }, 'a read answers 503')
    t.ok((read as { message: string }).message.length > 0, 'with a message')
    const write = await s3
      .send(new PutObjectCommand({ Bucket: 'edge', Key: 'new', Body: 'x' }))
      .catch((e: unknown) => s3Fault(e))
    t.match(write, { status: 503 }, 'a write is refused with 503')
    for (const n of c.nodes.slice(1)) await c.start(n.id)
    for (const [k, b] of bodies) {
      const r = await s3.send(new GetObjectCommand({ Bucket: 'edge', Key: k }))
      t.equal(sha(await bodyBytes(r.Body)), sha(b), `${k} is readable and intact again`)
    }
    const head = await s3
      .send(new HeadObjectCommand({ Bucket: 'edge', Key: 'new' }))
      .catch((e: unknown) => s3Fault(e))
    t.match(head, { status: 404 }, 'the refused write left nothing visible')
  },
)
