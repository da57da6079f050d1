// A full drive: one drive of the node is a 2 MiB tmpfs mounted by the test. Writes to it fail
// with the typed DRIVE_FULL error, leave nothing behind, and everything stored before stays
// readable and verified.
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import { getObject, place, putObject, shardDrive } from './harness/object-io.ts'
import { tmpfsFolder } from './harness/tmpfs.ts'

t.test('a full drive answers DRIVE_FULL and keeps what it stored', async (t) => {
  const small = await tmpfsFolder(t, 2)
  const c = await startCluster(t, {
    nodes: 1,
    drivesPerNode: 3,
    k: 2,
    m: 1,
    blockSize: 64 * 1024,
    drivePath: (dir, node, drive) =>
      node === 0 && drive === 0 ? small : join(dir, `n${node + 1}`, `d${drive + 1}`),
  })
  const stored: { key: string; data: Buffer }[] = []
  let full: { code?: string; message?: string } | undefined
  for (let i = 0; i < 60 && full === undefined; i++) {
    const key = `obj-${i}`
    const data = randomBytes(200_000)
    const put = await putObject(c, 'fill', key, data)
    const p = place(c, 'fill', key)
    // Which shard of this object lives on the small drive?
    const onSmall = [0, 1, 2].find((s) => shardDrive(p, s).path === small)!
    const r = put.results[onSmall]!
    if (r.status === 'rejected') full = r.reason as { code?: string; message?: string }
    else stored.push({ key, data })
  }
  t.ok(full, 'the small drive filled up')
  t.equal(full?.code, 'DRIVE_FULL', `typed error: ${full?.message}`)
  t.match(full?.message, small, 'the message names the drive')
  t.ok(stored.length > 3, `${stored.length} objects were stored before`)
  const tmp = await readdir(join(small, '.tessera', 'tmp'))
  t.same(tmp, [], 'the failed write left nothing in tmp')
  // Everything stored before is intact: read it back with the small drive's shard required.
  for (const { key, data } of stored) {
    const errors: number[] = []
    const back = await getObject(c, 'fill', key, { onShardError: (s) => errors.push(s) })
    if (Buffer.compare(back, data) !== 0 || errors.length > 0) {
      t.fail(`${key} is damaged (shard errors ${errors})`)
      return
    }
  }
  t.pass(`all ${stored.length} earlier objects read back exactly, no shard errors`)
})
