/**
 * What the background removes: abandoned multipart uploads (the deployment default, when no
 * lifecycle rule covers them) and writes abandoned in tmp/ — and what it must leave alone.
 */
import { mkdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { HLC_COUNTER_SPAN, type UploadRecord } from '@tessera/protocol'
import t from 'tap'
import { Drive, TMP_MAX_AGE_MS } from '../src/drive.ts'
import { DAY_MS, type LifecycleRule, uploadDue } from '../src/lifecycle/rules.ts'

const upload = (key: string, initiatedMs: number): UploadRecord => ({
  bucket: 'b',
  key,
  uploadId: 'u1',
  initiated: initiatedMs * HLC_COUNTER_SPAN,
  erasure: { k: 2, m: 2, blockSize: 65536, distribution: [0, 1, 2, 3], index: 0 },
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
  let d: Drive | undefined
  // Before t.testdir(), so tap removes the folder only after the drive's store is closed.
  t.teardown(() => d?.close())
  const dir = t.testdir()
  d = await Drive.open({ path: dir, cluster: 'c', ref: { pool: 0, set: 0, slot: 0 } })
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
