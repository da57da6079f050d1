/**
 * Direct (O_DIRECT) shard writes: the bytes land exactly, whatever the sizes; they bypass the
 * page cache (fincore says so); a file system that refuses O_DIRECT, or a node out of aligned
 * buffers, writes through the page cache instead; failures give the buffer back and leave
 * nothing in tmp, and a full drive still says DRIVE_FULL.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import {
  AlignedSlabs,
  DIRECT_IO_SLAB_BYTES,
  probeDirectIo,
  ShardFileWriter,
} from '../src/direct-io.ts'
import { Drive } from '../src/drive.ts'
import { writeShard } from '../src/shard-io.ts'

const MiB = 1024 * 1024

/** Deterministic bytes that differ from block to block (a misplaced slab shows). */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  let x = seed | 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

/** `data` cut in pieces of 1 B to 200 KiB, as RPC bodies arrive. */
function* pieces(data: Buffer, seed: number): Generator<Buffer> {
  let at = 0
  let x = seed
  while (at < data.length) {
    x = (x * 1103515245 + 12345) >>> 0
    const n = Math.min(data.length - at, 1 + (x % (200 * 1024)))
    yield data.subarray(at, at + n)
    at += n
  }
}

async function* body(data: Buffer, seed = 7): AsyncGenerator<Uint8Array> {
  yield* pieces(data, seed)
}

/** Bytes of `path` in the page cache, by util-linux's fincore. */
function cachedBytes(path: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path])
  return Number(out.toString().trim())
}

const asRoot = process.getuid?.() === 0

/** Part 1 of an object on drive 0/0/0. */
const SHARD = {
  pool: 0,
  set: 0,
  slot: 0,
  bucket: 'bucket-1',
  key: 'k',
  dataDir: 'dd-0123456789',
  part: 1,
}

/** Writes `data` as SHARD under `tmpId` on `drive`, and checks the whole of it landed. */
async function writesWhole(t: Test, drive: Drive, tmpId: string, data: Buffer): Promise<void> {
  t.equal(await writeShard(drive, { ...SHARD, tmpId, size: data.length }, body(data)), data.length)
  t.ok((await readFile(join(drive.tmpPath(tmpId), 'part.1'))).equals(data), `${tmpId} is whole`)
}

/** A fresh file system of `type` mounted on a new folder (outside tap's), gone after `t`. */
function mountFs(t: Test, type: string, options: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), `tessera-${type}-`))
  execFileSync('mount', ['-t', type, ...options, type, dir], { stdio: 'ignore' })
  t.teardown(() => {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

t.test('aligned slabs: handed out up to the limit, taken back, counted', async (t) => {
  t.throws(() => new AlignedSlabs(-1), RangeError)
  const slabs = new AlignedSlabs(8 * MiB)
  const taken: Buffer[] = []
  for (let i = 0; i < 8; i++) {
    const s = slabs.take()
    if (s === undefined) throw new Error(`slab ${i} missing`)
    t.equal(s.length, DIRECT_IO_SLAB_BYTES)
    taken.push(s)
  }
  t.equal(slabs.take(), undefined, 'none past the limit')
  t.same(slabs.stats(), { allocatedBytes: 8 * MiB, lentBytes: 8 * MiB })
  t.throws(() => slabs.give(Buffer.alloc(DIRECT_IO_SLAB_BYTES)), /not one of these slabs/)
  for (const s of taken) slabs.give(s)
  t.same(slabs.stats(), { allocatedBytes: 8 * MiB, lentBytes: 0 })
  t.ok(slabs.take(), 'a given-back slab is handed out again')
  t.equal(new AlignedSlabs(4 * MiB).take(), undefined, 'less than one memory of slabs: none')
})

t.test('direct writes land exactly, whatever the sizes, and bypass the page cache', async (t) => {
  const dir = t.testdir()
  const slabs = new AlignedSlabs(8 * MiB)
  t.ok(await probeDirectIo(dir, slabs), "this machine's test folder takes O_DIRECT")
  t.same(await readdir(dir), [], 'the probe leaves nothing behind')
  const sizes = [0, 1, 4095, 4096, 4097, MiB - 1, MiB, MiB + 1, 2 * MiB + MiB / 2 + 7]
  for (const [i, size] of sizes.entries()) {
    const data = pattern(size, i + 1)
    const path = join(dir, `f${i}`)
    const support = { direct: true }
    const w = await ShardFileWriter.create(path, slabs, support)
    t.ok(w.direct, `${size} B: written direct`)
    for (const p of pieces(data, i)) await w.write(p)
    t.equal(await w.finish(), size, `${size} B: finish reports the length`)
    await w.close()
    t.equal((await stat(path)).size, size, `${size} B: the file has exactly that length`)
    t.ok((await readFile(path)).equals(data), `${size} B: and exactly those bytes`)
    t.equal(slabs.stats().lentBytes, 0, `${size} B: the slab went back`)
  }
  // fincore after the reads above would count the pages they brought in: a fresh file each.
  const data = pattern(3 * MiB + 100, 99)
  const direct = await ShardFileWriter.create(join(dir, 'direct'), slabs, { direct: true })
  for (const p of pieces(data, 3)) await direct.write(p)
  await direct.finish()
  await direct.close()
  const buffered = await ShardFileWriter.create(join(dir, 'buffered'), undefined, { direct: true })
  t.notOk(buffered.direct, 'no slabs: buffered')
  for (const p of pieces(data, 3)) await buffered.write(p)
  await buffered.finish()
  await buffered.close()
  t.ok(cachedBytes(join(dir, 'buffered')) >= data.length, 'a buffered file sits in the page cache')
  t.ok(
    cachedBytes(join(dir, 'direct')) <= 4096,
    `a direct file does not (${cachedBytes(join(dir, 'direct'))} B cached)`,
  )
  t.ok((await readFile(join(dir, 'direct'))).equals(data))
})

t.test(
  'a file system that refuses O_DIRECT is written through the page cache',
  {
    skip: !asRoot && 'needs root to mount ramfs',
  },
  async (t) => {
    // ramfs has no direct I/O at all: open with O_DIRECT fails with EINVAL.
    const dir = mountFs(t, 'ramfs')
    const slabs = new AlignedSlabs(8 * MiB)
    t.equal(await probeDirectIo(dir, slabs), false, 'the probe finds out')
    // A writer told the drive takes O_DIRECT learns otherwise at its open, and says so.
    const support = { direct: true }
    const data = pattern(MiB + 5, 5)
    const w = await ShardFileWriter.create(join(dir, 'f'), slabs, support)
    t.notOk(w.direct)
    t.equal(support.direct, false, 'the drive is marked')
    for (const p of pieces(data, 1)) await w.write(p)
    await w.finish()
    await w.close()
    t.ok((await readFile(join(dir, 'f'))).equals(data))
    t.equal(slabs.stats().lentBytes, 0, 'the slab went back')
    // The drive opened there knows from the start, and writes shards whole.
    const drivePath = join(dir, 'drive')
    const drive = await Drive.open({
      path: drivePath,
      cluster: 'c',
      ref: { pool: 0, set: 0, slot: 0 },
      slabs,
    })
    t.teardown(() => drive.close())
    t.equal(drive.directIo.direct, false)
    await writesWhole(t, drive, 'tmp-0123456789', data)
  },
)

t.test(
  'out of aligned buffers, writes go through the page cache; the buffers come back',
  async (t) => {
    const dir = t.testdir()
    const slabs = new AlignedSlabs(8 * MiB)
    const support = { direct: true }
    const open: ShardFileWriter[] = []
    for (let i = 0; i < 9; i++)
      open.push(await ShardFileWriter.create(join(dir, `f${i}`), slabs, support))
    t.same(
      open.map((w) => w.direct),
      [true, true, true, true, true, true, true, true, false],
      'eight direct, the ninth buffered',
    )
    t.equal(support.direct, true, 'running out is not a refusal')
    const data = pattern(2 * MiB + 3, 8)
    for (const [i, w] of open.entries()) {
      for (const p of pieces(data, i)) await w.write(p)
      await w.finish()
      await w.close()
      t.ok((await readFile(join(dir, `f${i}`))).equals(data), `file ${i}`)
    }
    t.same(slabs.stats(), { allocatedBytes: 8 * MiB, lentBytes: 0 })
    const again = await ShardFileWriter.create(join(dir, 'again'), slabs, support)
    t.ok(again.direct, 'direct again once the buffers are back')
    await again.close()
  },
)

t.test('a failed shard write leaves nothing in tmp and gives its buffer back', async (t) => {
  let d: Drive | undefined
  t.teardown(() => d?.close())
  const dir = t.testdir()
  const slabs = new AlignedSlabs(8 * MiB)
  d = await Drive.open({ path: dir, cluster: 'c', ref: { pool: 0, set: 0, slot: 0 }, slabs })
  t.ok(d.directIo.direct)
  const ref = SHARD
  const data = pattern(3 * MiB, 3)
  await t.rejects(
    writeShard(d, { ...ref, tmpId: 'tmp-long-000001', size: data.length - 1 }, body(data)),
    { code: 'BODY_TOO_LARGE' },
  )
  await t.rejects(
    writeShard(d, { ...ref, tmpId: 'tmp-short-00001', size: data.length + 1 }, body(data)),
    { code: 'INVALID_REQUEST', message: /ended after/ },
  )
  t.same(await readdir(join(dir, '.tessera', 'tmp')), [], 'nothing left in tmp')
  t.equal(slabs.stats().lentBytes, 0, 'every buffer went back')
  await writesWhole(t, d, 'tmp-good-000001', data)
})

t.test(
  'a full drive fails a direct write with DRIVE_FULL',
  {
    skip: !asRoot && 'needs root to mount a small tmpfs',
  },
  async (t) => {
    // tmpfs takes O_DIRECT since Linux 6.6; 2 MiB fill up with the drive's own files and one shard.
    const dir = mountFs(t, 'tmpfs', ['-o', 'size=2m'])
    let d: Drive | undefined
    t.teardown(() => d?.close())
    const slabs = new AlignedSlabs(8 * MiB)
    d = await Drive.open({ path: dir, cluster: 'c', ref: { pool: 0, set: 0, slot: 0 }, slabs })
    const ref = SHARD
    const data = pattern(4 * MiB, 4)
    await t.rejects(
      writeShard(d, { ...ref, tmpId: 'tmp-full-000001', size: data.length }, body(data)),
      {
        code: 'DRIVE_FULL',
        message: new RegExp(`drive ${dir} is full`),
      },
    )
    t.same(await readdir(join(dir, '.tessera', 'tmp')), [], 'nothing left in tmp')
    t.equal(slabs.stats().lentBytes, 0, 'the buffer went back')
  },
)
