// A drive that hangs without failing: its file system is frozen (fsfreeze), so every write to
// it blocks, as on a dying disk retrying a sector or a stalled controller, while its node stays
// up and answers pings. Once an operation has waited on it for the stall window (10 s), the
// node refuses calls to it at once (DRIVE_OFFLINE) and reports it offline, so requests go on
// through the other drives instead of each waiting out a call deadline; its node's other
// drive keeps serving. Thawed, the drive serves again and gets what it missed. And a disk whose
// reads hang under a GET in progress (a FUSE file system that stops answering them): the GET
// gives the shard up after 10 s and finishes from parity, instead of waiting out its stream's
// one-hour deadline.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import { type DriveSlot, GetDriveInfo } from '@tessera/protocol'
import t from 'tap'
import { eventually, FOUR_NODES_RS22, startCluster, versionsOn } from './harness/cluster.ts'
import { hangingFolder } from './harness/hangfs.ts'
import { place, shardDrive } from './harness/object-io.ts'
import { bodyBytes, bytes, s3Client, sha256, uniqueBucket } from './harness/s3.ts'
import { freezableFolder } from './harness/tmpfs.ts'

const skip = process.getuid?.() !== 0 ? 'mounting and freezing a file system needs root' : false

/** Calls to node `nodeId` the gateway counts as failed with `code`. */
async function failedCalls(endpoint: string, nodeId: string, code: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/_tessera/metrics`)).text()
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`tessera_rpc_errors_total{node="${nodeId}",code="${code}"}`))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

t.test(
  'a hung drive is refused, not waited on, and serves again once it answers',
  { skip },
  async (t) => {
    const hung = await freezableFolder(t, 64)
    const c = await startCluster(t, {
      ...FOUR_NODES_RS22,
      drivesPerNode: 2,
      // n4's second drive is the one that hangs.
      drivePath: (dir, node, drive) =>
        node === 3 && drive === 1
          ? join(hung.path, 'd')
          : join(dir, `n${node + 1}`, `d${drive + 1}`),
    })
    const endpoint = c.gateways[0]!.endpoint
    const s3 = s3Client(endpoint, { requestHandler: { requestTimeout: 60_000 } })
    t.teardown(() => s3.destroy())
    const bucket = uniqueBucket()
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    const data = (i: number) => bytes(200_000, i)
    const before = Array.from({ length: 6 }, (_, i) => `before/${i}`)
    for (const [i, key] of before.entries())
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data(i) }))

    const slots = c.layout.pools[0]!.sets.flatMap((s) => s.drives)
    const hungSlot = slots.find((d) => d.path === join(hung.path, 'd'))!
    const otherSlot = slots.find((d) => d.nodeId === 'n4' && d !== hungSlot)!
    const driveInfo = async (d: DriveSlot) =>
      (await c.pool.call(c.peer('n4'), GetDriveInfo, {})).drives.find((x) => x.path === d.path)!

    await hung.freeze()
    // Writes go on; those that reach the hung drive first wait on it, until the node has seen an
    // operation wait there for its stall window.
    const during: string[] = []
    const stalled = await eventually(
      'the hung drive is reported offline',
      async () => {
        const key = `during/${during.length}`
        await s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: key, Body: data(100 + during.length) }),
        )
        during.push(key)
        const info = await driveInfo(hungSlot)
        return info.online ? undefined : info
      },
      60_000,
    )
    t.match(
      stalled.error,
      /stalled: an operation has waited on it for \d+ s/,
      'the node reports it stalled',
    )
    t.ok((await driveInfo(otherSlot)).online, "the node's other drive stays online")

    // Now calls to it are refused at once, and everything goes on through the other drives.
    const refusedBefore = await failedCalls(endpoint, 'n4', 'DRIVE_OFFLINE')
    for (let i = 0; i < 4; i++) {
      const key = `during/${during.length}`
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: data(100 + during.length) }),
      )
      during.push(key)
    }
    t.pass('PUTs succeed')
    for (const [i, key] of before.entries()) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      t.equal(sha256(await bodyBytes(got.Body)), sha256(data(i)), `GET ${key}`)
      await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }))
    t.equal(listed.KeyCount, before.length + during.length, 'the listing has every object')
    t.ok(
      (await failedCalls(endpoint, 'n4', 'DRIVE_OFFLINE')) > refusedBefore,
      'calls to the hung drive were refused (DRIVE_OFFLINE), not left to wait',
    )
    const log = await readFile(c.node('n4').logPath, 'utf8')
    t.match(log, /an operation has waited on the drive too long \(a hung disk\?\)/, 'n4 says why')

    await hung.thaw()
    await eventually(
      'the drive is online again',
      async () => ((await driveInfo(hungSlot)).online ? true : undefined),
      60_000,
    )
    t.pass('thawed, the drive is online again')
    // It serves again, and gets the writes it missed (those whose set it is in).
    const after = 'after/0'
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: after, Body: data(999) }))
    const inSet = [...during, after].filter((key) =>
      place(c, bucket, key).set.drives.some((d) => d.path === hungSlot.path),
    )
    t.ok(inSet.length > 0, 'some objects were written to its set')
    for (const key of inSet) {
      await eventually(
        `${key} reaches the drive`,
        async () => ((await versionsOn(c, hungSlot, bucket, key)).length > 0 ? true : undefined),
        60_000,
      )
    }
    t.pass(`the ${inSet.length} objects of its set written while it hung, and after, are on it`)
  },
)

t.test('a GET whose data shard stops coming finishes from parity', { skip }, async (t) => {
  const hung = await hangingFolder(t)
  const c = await startCluster(t, {
    ...FOUR_NODES_RS22,
    drivePath: (dir, node, drive) =>
      node === 0 ? hung.path : join(dir, `n${node + 1}`, `d${drive + 1}`),
  })
  // A client that gives up long before the one-hour stream deadline.
  const s3 = s3Client(c.gateways[0]!.endpoint, { requestHandler: { requestTimeout: 60_000 } })
  t.teardown(() => s3.destroy())
  const bucket = uniqueBucket()
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  // A key whose first data shard is on the drive that will hang.
  let key = ''
  for (let i = 0; key === ''; i++) {
    if (shardDrive(place(c, bucket, `k${i}`), 0).path === hung.path) key = `k${i}`
  }
  const body = bytes(1_000_000, 7)
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))

  await hung.hangReads()
  // Bounded here, so that a GET waiting on the hung shard fails the test in a minute.
  const within = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the GET is still waiting after 60 s')), 60_000).unref(),
      ),
    ])
  const got = await within(
    s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).then((r) => bodyBytes(r.Body)),
  )
  t.equal(sha256(got), sha256(body), 'the GET finishes, from parity')
  const info = (await c.pool.call(c.peer('n1'), GetDriveInfo, {})).drives[0]!
  t.match(info, { online: false, error: /stalled/ }, 'the node reports the drive stalled')
  const again = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  t.equal(sha256(await bodyBytes(again.Body)), sha256(body), 'and the next GET goes around it')

  await hung.resume()
  await eventually(
    'the drive is online again',
    async () =>
      (await c.pool.call(c.peer('n1'), GetDriveInfo, {})).drives[0]!.online ? true : undefined,
    60_000,
  )
  t.pass('its reads answered again, the drive is online again')
})
