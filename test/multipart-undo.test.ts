// CompleteMultipartUpload when drives fail between the gateway's check and the completion: two
// of four drives are small tmpfs mounts, filled up once the parts are in. They pass CheckUpload
// (it only reads) and fail CompleteUpload (its metadata write finds no room), so only two drives
// complete where three must. The gateway takes the completion back on those two: the client gets
// 503, no object appears, the upload and all its parts stay, and the same Complete succeeds once
// the drives have room again.
import { readdir, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { objectHash } from '@tessera/node'
import { GetUpload } from '@tessera/protocol'
import t from 'tap'
import { FOUR_NODES_RS22, gatewaySeesEveryDrive, startCluster } from './harness/cluster.ts'
import { place, shardDrive } from './harness/object-io.ts'
import { bodyBytes, bytes, s3Client, s3Fault, sha256, uniqueBucket } from './harness/s3.ts'
import { tmpfsFolder } from './harness/tmpfs.ts'

/** Fills the file system at `dir` to the last page; the filler's path. */
async function fill(dir: string): Promise<string> {
  const s = await statfs(dir)
  const path = join(dir, 'filler')
  await writeFile(path, Buffer.alloc(Number(s.bavail) * Number(s.bsize)))
  return path
}

const skip = process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false

t.test('a Complete that fails after its checks is taken back whole', { skip }, async (t) => {
  const small = [await tmpfsFolder(t, 24), await tmpfsFolder(t, 24)]
  const c = await startCluster(t, {
    ...FOUR_NODES_RS22,
    drivePath: (dir, node, drive) => small[node] ?? join(dir, `n${node + 1}`, `d${drive + 1}`),
  })
  const s3 = s3Client(c.gateways[0]!.endpoint)
  t.teardown(() => s3.destroy())
  const bucket = uniqueBucket()
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))

  // Metadata and tags make the completion's metadata write several KiB, so that it needs fresh
  // pages of the full tmpfs whatever room the last page of LevelDB's log has left.
  const key = 'mp/undone'
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      Metadata: { pad: 'm'.repeat(1900) },
      Tagging: Array.from({ length: 10 }, (_, i) => `t${i}=${'v'.repeat(250)}`).join('&'),
    }),
  )
  const parts = [bytes(5 * 1024 * 1024, 21), bytes(100_000, 22), bytes(90_000, 23)]
  const etags: { PartNumber: number; ETag: string }[] = []
  for (const [i, body] of parts.entries()) {
    const r = await s3.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }),
    )
    etags.push({ PartNumber: i + 1, ETag: r.ETag! })
  }
  // Parts 1 and 2 make the object; part 3 is uploaded but not chosen.
  const complete = () =>
    s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.slice(0, 2) },
      }),
    )

  const fillers = await Promise.all(small.map(fill))
  const refused = await complete().catch(s3Fault)
  t.match(refused, { code: 'ServiceUnavailable', status: 503 }, 'two drives of four: 503')
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(s3Fault)
  t.equal((head as { status?: number }).status, 404, 'no object: the completion was taken back')

  // The healthy drives did complete, then took it back: their upload remembers the undo.
  const p = place(c, bucket, key)
  const healthy = [0, 1, 2, 3].map((s) => shardDrive(p, s)).filter((d) => !small.includes(d.path))
  t.equal(healthy.length, 2, 'two healthy drives')
  for (const d of healthy) {
    const { record } = await c.pool.call(c.peer(d.nodeId), GetUpload, {
      pool: d.pool,
      set: d.set,
      slot: d.slot,
      bucket,
      key,
      uploadId: UploadId!,
    })
    t.ok(record?.undone, `${d.nodeId}: completed, then undone; the upload is in progress again`)
    t.equal(record?.completing, undefined, `${d.nodeId}: no completion pending`)
  }
  const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }))
  t.same(
    listed.Parts?.map((x) => x.PartNumber),
    [1, 2, 3],
    'every part survives, the unchosen one too',
  )

  // Room again, and the two nodes restarted (LevelDB refuses writes after a failed one).
  for (const f of fillers) await rm(f)
  for (const id of ['n1', 'n2']) {
    await c.stop(id)
    await c.start(id)
  }
  await gatewaySeesEveryDrive(c)
  const done = await complete()
  t.match(done.ETag, /-2"$/, 'the same Complete now succeeds')
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  t.equal(
    sha256(await bodyBytes(got.Body)),
    sha256(Buffer.concat(parts.slice(0, 2))),
    'the object is parts 1 and 2',
  )
  t.equal(got.Metadata?.pad, 'm'.repeat(1900), 'with its metadata')
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
  t.equal(uploads.Uploads?.length ?? 0, 0, 'the upload is no longer listed')
  // Every drive keeps the chosen parts' files and dropped the unchosen one.
  const h = objectHash(bucket, key)
  for (let s = 0; s < 4; s++) {
    const d = shardDrive(p, s)
    const objectDir = join(d.path, 'data', bucket, h.slice(0, 2), h)
    const dirs = await readdir(objectDir)
    t.equal(dirs.length, 1, `${d.nodeId}: one data folder`)
    t.same(
      (await readdir(join(objectDir, dirs[0]!))).sort(),
      ['part.1', 'part.2'],
      `${d.nodeId}: the chosen parts only`,
    )
  }
})
