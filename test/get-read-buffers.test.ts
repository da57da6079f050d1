/**
 * GETs receive shard data in pooled buffers that later GETs reuse (@tessera/protocol's
 * BufferPool, decodeStream's lent chunks). A buffer given back too early would be refilled by
 * another GET while its bytes still wait to be written, so this drives many GETs at once (whole
 * objects, ranges, a multipart object, clients that hang up midway, a node that dies midway so
 * that blocks are rebuilt from parity) over a real 4-node RS(2,2) cluster with 1 MiB blocks,
 * checks every byte, and reads the gateway's tessera_read_buffer_bytes gauge: everything lent
 * comes back, and buffers are kept for reuse.
 */
import type { Readable } from 'node:stream'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, sha256, uniqueBucket } from './harness/s3.ts'

const MiB = 1024 * 1024

/** The gateway's read buffer gauge, by state. */
async function readBuffers(endpoint: string): Promise<{ lent: number; free: number }> {
  const text = await (await fetch(`${endpoint}/_tessera/metrics`)).text()
  const value = (state: string): number => {
    const m = new RegExp(`^tessera_read_buffer_bytes\\{state="${state}"\\} (\\S+)$`, 'm').exec(text)
    if (m === null) throw new Error(`no tessera_read_buffer_bytes{state="${state}"} in /metrics`)
    return Number(m[1])
  }
  return { lent: value('lent'), free: value('free') }
}

/** Polls until nothing is lent (a hung-up GET gives its buffers back as it unwinds). */
async function allBack(endpoint: string): Promise<{ lent: number; free: number }> {
  let last = await readBuffers(endpoint)
  for (let i = 0; i < 100 && last.lent !== 0; i++) {
    await new Promise((r) => setTimeout(r, 100))
    last = await readBuffers(endpoint)
  }
  return last
}

t.test('GETs reuse read buffers and never mix up bytes', async (t) => {
  const c = await startCluster(t, {
    nodes: 4,
    drivesPerNode: 1,
    k: 2,
    m: 2,
    gateways: 1,
    blockSize: MiB,
    inlineBelow: 64 * 1024,
  })
  const gw = c.gateways[0]!
  const s3 = s3Client(gw.endpoint)
  t.teardown(() => s3.destroy())
  const Bucket = uniqueBucket('reads')
  await s3.send(new CreateBucketCommand({ Bucket }))

  // Objects of distinct contents: several blocks, a short last block, one block and a byte,
  // and a multipart object whose parts are read through one response.
  const objects = new Map<string, Buffer>()
  const sizes = [5 * MiB + 123, 3 * MiB, MiB + 1, 2 * MiB + 512 * 1024 + 7]
  for (const [i, size] of sizes.entries()) {
    const body = bytes(size, 100 + i)
    objects.set(`o${i}`, body)
    await s3.send(new PutObjectCommand({ Bucket, Key: `o${i}`, Body: body }))
  }
  const parts = [bytes(5 * MiB, 200), bytes(2 * MiB + 99, 201)]
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mp' }))
  const etags: string[] = []
  for (const [i, Body] of parts.entries()) {
    const r = await s3.send(
      new UploadPartCommand({ Bucket, Key: 'mp', UploadId, PartNumber: i + 1, Body }),
    )
    etags.push(r.ETag!)
  }
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket,
      Key: 'mp',
      UploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
    }),
  )
  objects.set('mp', Buffer.concat(parts))
  const keys = [...objects.keys()]

  /** One GET of a key (a range of it for odd n), checked byte for byte. */
  const check = async (n: number): Promise<string | undefined> => {
    const key = keys[n % keys.length]!
    const whole = objects.get(key)!
    let want = whole
    let Range: string | undefined
    if (n % 2 === 1) {
      const start = (n * 700_001) % (whole.length - 1)
      const end = Math.min(whole.length, start + 1 + ((n * 1_300_003) % (3 * MiB)))
      Range = `bytes=${start}-${end - 1}`
      want = whole.subarray(start, end)
    }
    const got = await bodyBytes(
      (await s3.send(new GetObjectCommand({ Bucket, Key: key, ...(Range ? { Range } : {}) }))).Body,
    )
    return sha256(got) === sha256(want) ? undefined : `${key} ${Range ?? 'whole'}: wrong bytes`
  }
  /** A client that reads the start of a body, then hangs up. */
  const hangUp = async (n: number): Promise<void> => {
    const res = await s3.send(new GetObjectCommand({ Bucket, Key: keys[n % keys.length]! }))
    const body = res.Body as Readable
    await new Promise<void>((resolve) => {
      body.once('data', () => {
        body.destroy()
        resolve()
      })
      body.once('error', () => resolve())
    })
  }
  const round = async (name: string): Promise<void> => {
    const wrong: string[] = []
    await Promise.all(
      Array.from({ length: 24 }, async (_, n) => {
        if (n % 8 === 7) await hangUp(n)
        else {
          const w = await check(n)
          if (w) wrong.push(w)
        }
      }),
    )
    t.same(wrong, [], `${name}: 21 GETs at once, every byte right`)
  }

  await round('first round')
  const first = await allBack(gw.endpoint)
  t.equal(first.lent, 0, 'every buffer lent to a GET came back, hung-up ones included')
  t.ok(first.free > 0, `buffers are kept for the next GETs (${first.free} bytes)`)
  await round('second round, on reused buffers')
  t.equal((await allBack(gw.endpoint)).lent, 0)

  // A node dies while GETs stream from it: they go on from parity (the codec path, which must
  // copy lent chunks before it hands them to a worker), and what its streams held comes back.
  const dying = round('a node dies midway')
  await new Promise((r) => setTimeout(r, 150))
  await c.stop('n1', 'SIGKILL')
  await dying
  t.equal((await allBack(gw.endpoint)).lent, 0, 'with a node gone midway, everything came back')
  await round('a node down')
  t.equal((await allBack(gw.endpoint)).lent, 0, 'with a node down too, everything came back')
})
