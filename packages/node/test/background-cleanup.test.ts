/**
 * What the background removes: abandoned multipart uploads (the deployment default, when no
 * lifecycle rule covers them), writes abandoned in tmp/ and data folders no record names — and
 * what it must leave alone.
 */
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  HLC_COUNTER_SPAN,
  type PartRecord,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'
import t, { type Test } from 'tap'
import { Drive, ORPHAN_MIN_AGE_MS, TMP_MAX_AGE_MS } from '../src/drive.ts'
import { FULL_HEAL_PENDING_KEY } from '../src/heal/scanner.ts'
import { DAY_MS, type LifecycleRule, uploadDue } from '../src/lifecycle/rules.ts'

const ERASURE = { k: 2, m: 2, blockSize: 65536, distribution: [0, 1, 2, 3], index: 0 }

/** A drive in the test's folder, closed before tap removes the folder. */
async function openDrive(t: Test): Promise<{ d: Drive; dir: string }> {
  let d: Drive | undefined
  // Before t.testdir(), so tap removes the folder only after the drive's store is closed.
  t.teardown(() => d?.close())
  const dir = t.testdir()
  d = await Drive.open({ path: dir, cluster: 'c', ref: { pool: 0, set: 0, slot: 0 } })
  return { d, dir }
}

const upload = (key: string, initiatedMs: number): UploadRecord => ({
  bucket: 'bkt',
  key,
  uploadId: 'u1',
  initiated: initiatedMs * HLC_COUNTER_SPAN,
  erasure: ERASURE,
})

t.test('abandoned uploads: the deployment default and the rules', async (t) => {
  const now = Date.UTC(2026, 10, 23, 12)
  const old = upload('logs/a', now - 9 * DAY_MS)
  const young = upload('logs/b', now - 2 * DAY_MS)
  t.ok(uploadDue([], old, now, 7), 'no rule: aborted after the 7-day default')
  t.notOk(uploadDue([], young, now, 7), 'a younger upload is kept')
  t.notOk(uploadDue([], old, now, 0), 'the default can be turned off')
  const rule: LifecycleRule = {
    id: 'r',
    status: 'Enabled',
    filter: { prefix: 'logs/' },
    abortIncompleteMultipartUpload: { daysAfterInitiation: 30 },
  } as LifecycleRule
  t.notOk(uploadDue([rule], old, now, 7), 'a covering rule overrides the default (30 days)')
  t.ok(
    uploadDue([rule], upload('other/x', now - 9 * DAY_MS), now, 7),
    'keys the rule does not cover fall back to the default',
  )
})

t.test('tmp/: old abandoned writes go, recent ones stay', async (t) => {
  const { d, dir } = await openDrive(t)
  const tmp = join(dir, '.tessera', 'tmp')
  await mkdir(join(tmp, 'old-write'), { recursive: true })
  await writeFile(join(tmp, 'old-write', 'part.1'), 'x')
  const past = new Date(Date.now() - TMP_MAX_AGE_MS - 60_000)
  await utimes(join(tmp, 'old-write'), past, past)
  await mkdir(join(tmp, 'live-write'), { recursive: true })
  t.equal(await d.cleanTmp(), 1, 'one abandoned write removed')
  t.rejects(stat(join(tmp, 'old-write')), 'the old one is gone')
  t.ok((await stat(join(tmp, 'live-write'))).isDirectory(), 'a write in progress stays')
})

t.test('data/: old folders no record names go; named, young and unrelated ones stay', async (t) => {
  const { d, dir } = await openDrive(t)
  const version: VersionRecord = {
    bucket: 'bkt',
    key: 'named',
    versionId: 'null',
    modTime: Date.now() * HLC_COUNTER_SPAN,
    size: 100_000,
    etag: 'e',
    parts: [{ number: 1, size: 100_000, etag: 'e' }],
    dataDir: 'dir-version',
    erasure: ERASURE,
  } as VersionRecord
  await d.meta.putVersion(version)
  await d.meta.putUpload({ ...upload('up', Date.now()), dataDir: 'dir-upload' })
  const part: PartRecord = {
    bucket: 'bkt',
    key: 'up',
    uploadId: 'u1',
    number: 2,
    size: 10,
    etag: 'p',
    modTime: Date.now() * HLC_COUNTER_SPAN,
    dataDir: 'dir-part',
    erasure: ERASURE,
  }
  await d.meta.putPart(part)
  const past = new Date(Date.now() - ORPHAN_MIN_AGE_MS - 60_000)
  const folder = async (key: string, dataDir: string, old: boolean) => {
    const p = d.dataPath('bkt', key, dataDir)
    await mkdir(p, { recursive: true })
    await writeFile(join(p, 'part.1'), 'x')
    if (old) await utimes(p, past, past)
    return p
  }
  const named = await folder('named', 'dir-version', true)
  const uploadDir = await folder('up', 'dir-upload', true)
  const partDir = await folder('up', 'dir-part', true)
  const orphan = await folder('named', 'dir-orphan', true)
  const otherKey = await folder('gone', 'dir-gone', true)
  const young = await folder('new', 'dir-young', false)
  t.same(
    await d.sweepOrphans(),
    { folders: 6, removed: 2, strayUploads: 0, finishedUploads: 0 },
    'six folders, two orphans',
  )
  await t.rejects(stat(orphan), 'an old folder beside a named one goes')
  await t.rejects(stat(otherKey), 'an old folder of a key without records goes')
  for (const [p, what] of [
    [named, 'a version names it'],
    [uploadDir, 'an upload names it'],
    [partDir, 'a part names it'],
    [young, 'too young: a write may be committing it'],
  ] as const) {
    t.ok((await stat(p)).isDirectory(), `stays: ${what}`)
  }
  t.equal((await readdir(join(dir, '.tessera', 'trash'))).length, 2, 'the orphans are in trash')
  t.same(
    await d.sweepOrphans(),
    { folders: 4, removed: 0, strayUploads: 0, finishedUploads: 0 },
    'a second sweep finds nothing',
  )
  // While a whole-drive heal is under way, what it has not reached yet is left to it.
  await folder('later', 'dir-later', true)
  await d.meta.putSystem(FULL_HEAL_PENDING_KEY, { since: Date.now() })
  t.same(
    await d.sweepOrphans(),
    { folders: 0, removed: 0, strayUploads: 0, finishedUploads: 0, skipped: true },
    'no sweep mid-heal',
  )
  await d.meta.deleteSystem(FULL_HEAL_PENDING_KEY)
  t.same(
    await d.sweepOrphans(),
    { folders: 5, removed: 1, strayUploads: 0, finishedUploads: 0 },
    'the heal done, the sweep resumes',
  )
})

t.test(
  'parts of an upload the drive has no record of go once old, with their folders',
  async (t) => {
    const { d, dir } = await openDrive(t)
    const old = Date.now() - ORPHAN_MIN_AGE_MS - 60_000
    const part = (uploadId: string, number: number, ms: number, dataDir: string): PartRecord => ({
      bucket: 'bkt',
      key: 'k',
      uploadId,
      number,
      size: 10,
      etag: `p${number}`,
      modTime: ms * HLC_COUNTER_SPAN,
      dataDir,
      erasure: ERASURE,
    })
    // stray: old parts, no upload record (the drive missed the CreateMultipartUpload).
    await d.meta.putPart(part('stray', 1, old, 'dir-stray'))
    await d.meta.putPart(part('stray', 2, old - 1000, 'dir-stray'))
    // young: no record either, but a part written lately (its record may yet be repaired).
    await d.meta.putPart(part('young', 1, old, 'dir-young'))
    await d.meta.putPart(part('young', 2, Date.now(), 'dir-young'))
    // kept: old parts of an upload the drive has.
    await d.meta.putUpload({ ...upload('k', old), uploadId: 'kept', dataDir: 'dir-kept' })
    await d.meta.putPart(part('kept', 1, old, 'dir-kept'))
    const past = new Date(old)
    for (const f of ['dir-stray', 'dir-young', 'dir-kept']) {
      const p = d.dataPath('bkt', 'k', f)
      await mkdir(p, { recursive: true })
      await writeFile(join(p, 'part.1'), 'x')
      await utimes(p, past, past)
    }
    t.same(
      await d.sweepOrphans(),
      { folders: 3, removed: 1, strayUploads: 1, finishedUploads: 0 },
      'one stray upload, and its folder',
    )
    t.same((await d.meta.getParts('bkt', 'k', 'stray')).parts, [], 'its part records are gone')
    await t.rejects(stat(d.dataPath('bkt', 'k', 'dir-stray')), 'its folder is in trash')
    t.same(
      (await d.meta.getParts('bkt', 'k', 'young')).parts.map((p) => p.number),
      [1, 2],
      'a stray upload with a recent part stays',
    )
    t.same(
      (await d.meta.getParts('bkt', 'k', 'kept')).parts.map((p) => p.number),
      [1],
      'parts of an upload the drive has stay',
    )
    for (const f of ['dir-young', 'dir-kept'])
      t.ok((await stat(d.dataPath('bkt', 'k', f))).isDirectory(), `${f} stays`)
  },
)

t.test('a completion no gateway settled is finished once old; a recent one waits', async (t) => {
  const { d, dir } = await openDrive(t)
  const old = Date.now() - ORPHAN_MIN_AGE_MS - 60_000
  /** An upload of bkt/<key> with parts 1 and 2, completed at `ms` with part 1 only. */
  const completed = async (key: string, ms: number) => {
    const modTime = ms * HLC_COUNTER_SPAN
    const dataDir = `dir-${key}`
    await d.meta.putUpload({
      ...upload(key, ms),
      uploadId: 'u1',
      dataDir,
      completing: { versionId: 'null', modTime },
    })
    for (const number of [1, 2]) {
      await d.meta.putPart({
        bucket: 'bkt',
        key,
        uploadId: 'u1',
        number,
        size: 10,
        etag: `p${number}`,
        modTime,
        dataDir,
        erasure: ERASURE,
      })
      await mkdir(d.dataPath('bkt', key, dataDir), { recursive: true })
      await writeFile(d.shardPath('bkt', key, dataDir, number), 'x')
    }
    const version: VersionRecord = {
      bucket: 'bkt',
      key,
      versionId: 'null',
      modTime,
      size: 10,
      etag: 'mp-1',
      erasure: ERASURE,
      parts: [{ number: 1, size: 10, etag: 'p1' }],
      dataDir,
      deleteMarker: false,
    }
    await d.meta.putVersion(version)
    return dataDir
  }
  const stale = await completed('stale', old)
  const fresh = await completed('fresh', Date.now())
  const sweep = await d.sweepOrphans()
  t.equal(sweep.finishedUploads, 1, 'one completion finished')
  t.equal(sweep.removed, 0, 'no folder went: versions name both')
  t.equal(await d.meta.getUpload('bkt', 'stale', 'u1'), undefined, 'its upload record went')
  t.same((await d.meta.getParts('bkt', 'stale', 'u1')).parts, [], 'with its part records')
  t.same(
    await readdir(d.dataPath('bkt', 'stale', stale)),
    ['part.1'],
    'the unchosen part went to trash, the version keeps its own',
  )
  t.ok((await d.meta.getUpload('bkt', 'fresh', 'u1'))?.completing, 'a recent completion waits')
  // Settled completions are kept a day for a retried Complete, then go.
  const settled = (key: string, ms: number): UploadRecord => ({
    ...upload(key, ms),
    completed: { versionId: 'null', modTime: ms * HLC_COUNTER_SPAN, etag: 'mp-1' },
  })
  await d.meta.putUpload(settled('done-old', old))
  await d.meta.putUpload(settled('done-new', Date.now()))
  await d.sweepOrphans()
  t.equal(await d.meta.getUpload('bkt', 'done-old', 'u1'), undefined, 'an old settled one goes')
  t.ok((await d.meta.getUpload('bkt', 'done-new', 'u1'))?.completed, 'a recent one stays')
  t.same((await readdir(d.dataPath('bkt', 'fresh', fresh))).sort(), ['part.1', 'part.2'])
})
