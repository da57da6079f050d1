import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type {
  BucketRecord,
  ErasureInfo,
  PartRecord,
  UploadRecord,
  VersionRecord,
} from '@tessera/protocol'
import t, { type Test } from 'tap'
import {
  compareKeys,
  decodeVersionKey,
  encodeModTime,
  prefixEnd,
  versionKey,
  versionScanPrefix,
} from '../src/meta-keys.ts'
import { MetaStore, MetaStoreError } from '../src/meta-store.ts'

/** mulberry32: a small seeded PRNG, so a failing property test can be replayed. */
class Rng {
  readonly seed: number
  #s: number

  constructor(seed = Number(process.env.TESSERA_TEST_SEED ?? 0x7e55e7a)) {
    this.seed = seed >>> 0
    this.#s = this.seed
  }

  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0
    let z = this.#s
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    return (z ^ (z >>> 14)) >>> 0
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + (this.next() % (hi - lo + 1))
  }

  pick<T>(items: readonly T[]): T {
    return items[this.next() % items.length]!
  }
}

const rng = new Rng()
t.comment(`seed ${rng.seed} (replay with TESSERA_TEST_SEED=${rng.seed})`)

// Characters chosen to stress the encoding: NUL and the escape bytes' neighbours, the
// delimiter, two-, three- and four-byte UTF-8, and both sides of the surrogate range, where
// UTF-8 byte order and JavaScript's UTF-16 order disagree.
const ALPHABET = [
  '\0',
  '\x01',
  'a',
  'b',
  '/',
  'ÿ',
  'ü',
  '\uD7FF',
  '\uE000',
  '\uFFFF',
  '😀',
  '\u{10FFFF}',
]

function randomString(max: number): string {
  let s = ''
  const n = rng.int(0, max)
  for (let i = 0; i < n; i++) s += rng.pick(ALPHABET)
  return s
}

const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

const ERASURE: ErasureInfo = {
  k: 4,
  m: 2,
  blockSize: 1 << 20,
  distribution: [2, 3, 4, 5, 0, 1],
  index: 1,
}

function version(
  bucket: string,
  key: string,
  versionId: string,
  modTime: number,
  extra: Partial<VersionRecord> = {},
): VersionRecord {
  return {
    bucket,
    key,
    versionId,
    modTime,
    size: 10,
    etag: `etag-${versionId}`,
    erasure: ERASURE,
    parts: [{ number: 1, size: 10, etag: 'p1' }],
    deleteMarker: false,
    ...extra,
  }
}

function upload(bucket: string, key: string, uploadId: string): UploadRecord {
  return { bucket, key, uploadId, initiated: 1000, erasure: ERASURE }
}

function part(bucket: string, key: string, uploadId: string, n: number): PartRecord {
  return {
    bucket,
    key,
    uploadId,
    number: n,
    size: 5 << 20,
    etag: `e${n}`,
    modTime: 2000 + n,
    dataDir: `dd-${uploadId}-${n}`,
    erasure: ERASURE,
  }
}

async function openStore(t: Test): Promise<MetaStore> {
  const store = await MetaStore.open({ path: join(t.testdir(), '.tessera', 'meta') })
  t.teardown(() => store.close())
  return store
}

/** Adds records quickly: many ops per batch. */
async function putAll(store: MetaStore, records: VersionRecord[]): Promise<void> {
  for (let i = 0; i < records.length; i += 2000) {
    const ops = records
      .slice(i, i + 2000)
      .map((record) => ({ type: 'putVersion' as const, record }))
    await store.batch(ops)
  }
}

const keysOf = (rs: readonly VersionRecord[]): string[] => rs.map((r) => r.key)

t.test('every kind of record round-trips, with binary fields and awkward keys', async (t) => {
  const store = await openStore(t)
  const key = 'dir/a\0b/ünï😀/\u{10FFFF}'
  const inline = new Uint8Array(300).map((_, i) => (i * 7) & 0xff)
  const rec = version('photos', key, 'v1', 123_456, {
    inline,
    checksums: { CRC32C: 'AAAAAA==' },
    contentType: 'image/png',
    userMeta: { 'x-amz-meta-a': 'b' },
  })
  await store.putVersion(rec)
  const got = await store.getVersion('photos', key, 'v1')
  t.ok(got?.inline instanceof Uint8Array, 'inline comes back as bytes')
  t.same(Buffer.from(got?.inline ?? []), Buffer.from(inline), 'inline bytes intact')
  const { inline: _a, ...restGot } = got ?? ({} as VersionRecord)
  const { inline: _b, ...restRec } = rec
  t.strictSame(restGot, restRec, 'the other fields are intact, as a plain object')
  t.equal(Object.getPrototypeOf(got), Object.prototype)
  t.equal(await store.getVersion('photos', key, 'v2'), undefined, 'absent version')
  t.equal(await store.getVersion('photos', 'dir/a', 'v1'), undefined, 'a prefix is another key')

  const bucket: BucketRecord = {
    name: 'photos',
    project: 'p',
    created: 5,
    versioning: 'enabled',
    settings: { tags: { a: 'b' }, n: [1, 2] },
  }
  await store.putBucket(bucket)
  t.strictSame(await store.getBucket('photos'), bucket)
  t.equal(await store.getBucket('photo'), undefined)

  const up = upload('photos', key, 'u1')
  await store.putUpload(up)
  t.strictSame(await store.getUpload('photos', key, 'u1'), up)
  const p = { ...part('photos', key, 'u1', 7), inline: new Uint8Array([0, 1, 2, 255]) }
  await store.putPart(p)
  const parts = (await store.getParts('photos', key, 'u1')).parts
  t.equal(parts.length, 1)
  t.same([...(parts[0]?.inline ?? [])], [0, 1, 2, 255], 'part inline bytes intact')

  const sys = { users: ['a', 'b'], n: 2 ** 40, nested: { ok: true }, bytes: new Uint8Array([9]) }
  await store.putSystem('iam/config', sys)
  const back = (await store.getSystem('iam/config')) as typeof sys
  t.same(back.users, sys.users)
  t.equal(back.n, 2 ** 40)
  t.same([...back.bytes], [9])
  t.equal(await store.getSystem('iam/conf'), undefined)

  t.equal(await store.deleteVersion('photos', key, 'v1'), true, 'delete reports it existed')
  t.equal(await store.deleteVersion('photos', key, 'v1'), false, 'second delete finds nothing')
  t.equal(await store.getVersion('photos', key, 'v1'), undefined)
  t.strictSame(await store.getVersions('photos', key), [], 'no stale version entry left')
  t.equal(await store.deleteBucket('photos'), true)
  t.equal(await store.deleteBucket('photos'), false)
  t.equal(await store.deleteSystem('iam/config'), true)
  t.equal(await store.deleteSystem('iam/config'), false)
})

t.test('versions come newest first; a record replaces the same versionId', async (t) => {
  const store = await openStore(t)
  for (const [id, time] of [
    ['v2', 200],
    ['v1', 100],
    ['v4', 400],
    ['v3', 300],
  ] as const) {
    await store.putVersion(version('b', 'k', id, time))
  }
  await store.putVersion(version('b', 'k0', 'x', 999))
  await store.putVersion(version('b', 'k\0', 'y', 999))
  t.strictSame(
    (await store.getVersions('b', 'k')).map((v) => v.versionId),
    ['v4', 'v3', 'v2', 'v1'],
  )
  t.strictSame(
    (await store.getVersions('b', 'k', 2)).map((v) => v.versionId),
    ['v4', 'v3'],
    'limit',
  )

  await store.putVersion(version('b', 'k', 'null', 250, { etag: 'first' }))
  await store.putVersion(version('b', 'k', 'null', 500, { etag: 'second' }))
  let ids = (await store.getVersions('b', 'k')).map((v) => `${v.versionId}@${v.modTime}`)
  t.strictSame(ids, ['null@500', 'v4@400', 'v3@300', 'v2@200', 'v1@100'], 'one null version')
  t.equal((await store.getVersion('b', 'k', 'null'))?.etag, 'second')

  // Healing may rewrite a record with an older time: still one copy of the version.
  await store.putVersion(version('b', 'k', 'null', 50, { etag: 'third' }))
  ids = (await store.getVersions('b', 'k')).map((v) => `${v.versionId}@${v.modTime}`)
  t.strictSame(ids, ['v4@400', 'v3@300', 'v2@200', 'v1@100', 'null@50'])

  // Two replacements of the same version in one group.
  await Promise.all([
    store.putVersion(version('b', 'k', 'null', 600, { etag: 'a' })),
    store.putVersion(version('b', 'k', 'null', 700, { etag: 'b' })),
  ])
  const nulls = (await store.getVersions('b', 'k')).filter((v) => v.versionId === 'null')
  t.strictSame(
    nulls.map((v) => v.etag),
    ['b'],
    'the later write wins, no duplicate',
  )
  const latest = await store.listLatest({ bucket: 'b', limit: 10 })
  t.strictSame(keysOf(latest.entries), ['k', 'k\0', 'k0'])
  t.equal(latest.entries[0]?.etag, 'b', 'the newest version of k is the replaced null')
})

t.test('listLatest: prefix, delimiter, startAfter, limit and nextMarker', async (t) => {
  const store = await openStore(t)
  const keys = ['a', 'a/1', 'a/2', 'a/b/1', 'b', 'b\0x', 'c/d', 'ü', '😀', '\uFFFF']
  let time = 1
  for (const key of keys) {
    await store.putVersion(version('bk', key, `${key}-old`, time++))
    await store.putVersion(version('bk', key, `${key}-new`, time++))
  }
  await store.putVersion(version('bk', 'b', 'b-dm', time++, { deleteMarker: true }))
  await store.putVersion(version('other', 'a', 'x', 1))
  const sorted = [...keys].sort(utf8Order)

  let r = await store.listLatest({ bucket: 'bk', limit: 100 })
  t.strictSame(keysOf(r.entries), sorted, 'all keys, UTF-8 byte order (😀 after \\uFFFF)')
  t.strictSame(r.commonPrefixes, [])
  t.equal(r.isTruncated, false)
  t.equal(r.nextMarker, undefined)
  t.strictSame(
    r.entries.map((e) => e.versionId),
    sorted.map((k) => (k === 'b' ? 'b-dm' : `${k}-new`)),
    'the newest version of each key, delete markers included',
  )
  t.equal(r.entries.find((e) => e.key === 'b')?.deleteMarker, true)

  r = await store.listLatest({ bucket: 'bk', delimiter: '/', limit: 100 })
  t.strictSame(keysOf(r.entries), ['a', 'b', 'b\0x', 'ü', '\uFFFF', '😀'])
  t.strictSame(r.commonPrefixes, ['a/', 'c/'])

  r = await store.listLatest({ bucket: 'bk', prefix: 'a/', delimiter: '/', limit: 100 })
  t.strictSame(keysOf(r.entries), ['a/1', 'a/2'])
  t.strictSame(r.commonPrefixes, ['a/b/'])

  r = await store.listLatest({ bucket: 'bk', prefix: 'a', limit: 100 })
  t.strictSame(keysOf(r.entries), ['a', 'a/1', 'a/2', 'a/b/1'])

  r = await store.listLatest({ bucket: 'bk', startAfter: 'a/1', limit: 3 })
  t.strictSame(keysOf(r.entries), ['a/2', 'a/b/1', 'b'])
  t.equal(r.isTruncated, true)
  t.equal(r.nextMarker, 'b')

  r = await store.listLatest({ bucket: 'bk', startAfter: 'a/1', delimiter: '/', limit: 100 })
  t.strictSame(keysOf(r.entries), ['b', 'b\0x', 'ü', '\uFFFF', '😀'], 'inside a/ → after a/')
  t.strictSame(r.commonPrefixes, ['c/'])

  // Pages of two items with a delimiter: prefixes count once and can be the marker.
  const seen: string[] = []
  let startAfter: string | undefined
  for (let page = 0; page < 10; page++) {
    r = await store.listLatest({ bucket: 'bk', delimiter: '/', limit: 2, startAfter })
    const items = [...keysOf(r.entries), ...r.commonPrefixes].sort(utf8Order)
    t.ok(items.length <= 2)
    seen.push(...items)
    if (!r.isTruncated) break
    t.equal(r.nextMarker, items.at(-1), 'nextMarker is the last item')
    startAfter = r.nextMarker
  }
  t.strictSame(seen, ['a', 'a/', 'b', 'b\0x', 'c/', 'ü', '\uFFFF', '😀'])

  r = await store.listLatest({ bucket: 'bk', limit: 0 })
  t.strictSame(r.entries, [])
  t.equal(r.isTruncated, true, 'limit 0: nothing returned, more follows')
  r = await store.listLatest({ bucket: 'nope', limit: 10 })
  t.strictSame([r.entries, r.commonPrefixes, r.isTruncated], [[], [], false])
  await t.rejects(store.listLatest({ bucket: 'bk', limit: -1 }), RangeError)
})

t.test('paging through a large bucket gives every key once, in order', async (t) => {
  const store = await openStore(t)
  const newest = new Map<string, VersionRecord>()
  const records: VersionRecord[] = []
  let time = 1
  while (newest.size < 3000) {
    const key = `${rng.pick(['', 'x/', 'y/z/', 'ü/'])}${randomString(5)}`
    const copies = rng.int(1, 3)
    for (let i = 0; i < copies; i++) {
      const rec = version('big', key, `v${time}`, time, { deleteMarker: rng.int(0, 9) === 0 })
      time++
      records.push(rec)
      newest.set(key, rec)
    }
  }
  await putAll(store, records)
  const expected = [...newest.keys()].sort(utf8Order)

  const got: VersionRecord[] = []
  let startAfter: string | undefined
  let pages = 0
  for (;;) {
    const r = await store.listLatest({ bucket: 'big', startAfter, limit: rng.int(1, 250) })
    got.push(...r.entries)
    pages++
    if (!r.isTruncated) break
    startAfter = r.nextMarker
  }
  t.strictSame(keysOf(got), expected, `every key once, in order, over ${pages} pages`)
  t.ok(
    got.every((r) => r.versionId === newest.get(r.key)?.versionId),
    'each is the newest version',
  )

  // The same with a delimiter: keys and common prefixes, each once, in order.
  const items = new Set<string>()
  for (const k of expected) {
    const i = k.indexOf('/')
    items.add(i < 0 ? k : k.slice(0, i + 1))
  }
  const expectedItems = [...items].sort(utf8Order)
  const gotItems: string[] = []
  startAfter = undefined
  for (;;) {
    const r = await store.listLatest({
      bucket: 'big',
      delimiter: '/',
      startAfter,
      limit: rng.int(1, 40),
    })
    gotItems.push(...[...keysOf(r.entries), ...r.commonPrefixes].sort(utf8Order))
    if (!r.isTruncated) break
    startAfter = r.nextMarker
  }
  t.strictSame(gotItems, expectedItems)

  // And every version, paged with the version markers.
  const all: string[] = []
  let keyMarker: string | undefined
  let versionIdMarker: string | undefined
  for (;;) {
    const r = await store.listVersions({
      bucket: 'big',
      keyMarker,
      versionIdMarker,
      limit: rng.int(1, 300),
    })
    all.push(...r.entries.map((e) => `${e.key}\u0001${e.versionId}`))
    if (!r.isTruncated) break
    keyMarker = r.nextKeyMarker
    versionIdMarker = r.nextVersionIdMarker
  }
  const expectedAll = [...records]
    .sort((a, b) => utf8Order(a.key, b.key) || b.modTime - a.modTime)
    .map((e) => `${e.key}\u0001${e.versionId}`)
  t.strictSame(all, expectedAll, 'every version once, newest first within a key')
})

t.test('listings skip a key’s old versions and a prefix’s keys, never walk them', async (t) => {
  const store = await openStore(t)
  const hot = Array.from({ length: 10_000 }, (_, i) => version('v', 'hot', `h${i}`, 10 + i))
  await putAll(store, [
    version('v', 'a', 'a1', 1),
    ...hot,
    version('v', 'hot0', 'x', 5),
    version('v', 'z', 'z1', 5),
  ])
  const dir = Array.from({ length: 10_000 }, (_, i) =>
    version('d', `dir/${String(i).padStart(5, '0')}`, 'v', 7),
  )
  await putAll(store, [version('d', 'a', 'a1', 1), ...dir, version('d', 'e', 'e1', 1)])

  let start = performance.now()
  let r = await store.listLatest({ bucket: 'v', limit: 1000 })
  let ms = performance.now() - start
  t.strictSame(keysOf(r.entries), ['a', 'hot', 'hot0', 'z'])
  t.equal(r.entries[1]?.versionId, 'h9999', 'the newest of 10,000 versions')
  t.ok(
    store.lastScanSteps < 32,
    `read ${store.lastScanSteps} entries of 10,003 (${ms.toFixed(1)} ms)`,
  )

  r = await store.listLatest({ bucket: 'v', startAfter: 'a', limit: 1 })
  t.strictSame(keysOf(r.entries), ['hot'])
  t.equal(r.isTruncated, true)
  t.ok(store.lastScanSteps < 16, `truncation check read ${store.lastScanSteps} entries`)

  start = performance.now()
  r = await store.listLatest({ bucket: 'd', delimiter: '/', limit: 1000 })
  ms = performance.now() - start
  t.strictSame(keysOf(r.entries), ['a', 'e'])
  t.strictSame(r.commonPrefixes, ['dir/'])
  t.ok(
    store.lastScanSteps < 32,
    `read ${store.lastScanSteps} entries of 10,002 (${ms.toFixed(1)} ms)`,
  )

  const rv = await store.listVersions({ bucket: 'd', delimiter: '/', limit: 1000 })
  t.strictSame(keysOf(rv.entries), ['a', 'e'])
  t.strictSame(rv.commonPrefixes, ['dir/'])
  t.ok(store.lastScanSteps < 32, `versions: read ${store.lastScanSteps} entries`)

  r = await store.listLatest({ bucket: 'd', prefix: 'dir/', limit: 10 })
  t.equal(r.entries.length, 10)
  t.equal(r.nextMarker, 'dir/00009')
  t.ok(store.lastScanSteps <= 11, `a page of 10 read ${store.lastScanSteps} entries`)

  // A page that starts inside the versions of a key, by marker: a point lookup, then a scan.
  const page = await store.listVersions({
    bucket: 'v',
    keyMarker: 'hot',
    versionIdMarker: 'h5000',
    limit: 3,
  })
  t.strictSame(
    page.entries.map((e) => e.versionId),
    ['h4999', 'h4998', 'h4997'],
  )
  t.ok(store.lastScanSteps < 16, `resuming mid-key read ${store.lastScanSteps} entries`)
})

t.test('listVersions markers follow S3 ListObjectVersions', async (t) => {
  const store = await openStore(t)
  for (let i = 1; i <= 5; i++) await store.putVersion(version('b', 'k1', `a${i}`, i))
  for (let i = 1; i <= 3; i++) await store.putVersion(version('b', 'k2', `b${i}`, i))
  await store.putVersion(version('b', 'k3', 'null', 1))
  await store.putVersion(version('b', 'p/x', 'c1', 1))
  await store.putVersion(version('b', 'p/y', 'c2', 1))
  const ids = (r: { entries: VersionRecord[] }) => r.entries.map((e) => e.versionId)

  let r = await store.listVersions({ bucket: 'b', limit: 100 })
  t.strictSame(ids(r), ['a5', 'a4', 'a3', 'a2', 'a1', 'b3', 'b2', 'b1', 'null', 'c1', 'c2'])

  r = await store.listVersions({ bucket: 'b', limit: 2 })
  t.strictSame(ids(r), ['a5', 'a4'])
  t.equal(r.isTruncated, true)
  t.equal(r.nextKeyMarker, 'k1')
  t.equal(r.nextVersionIdMarker, 'a4')

  r = await store.listVersions({ bucket: 'b', keyMarker: 'k1', versionIdMarker: 'a4', limit: 4 })
  t.strictSame(ids(r), ['a3', 'a2', 'a1', 'b3'])
  t.equal(r.nextKeyMarker, 'k2')
  t.equal(r.nextVersionIdMarker, 'b3')

  r = await store.listVersions({ bucket: 'b', keyMarker: 'k1', limit: 100 })
  t.strictSame(ids(r).slice(0, 3), ['b3', 'b2', 'b1'], 'keyMarker alone: from the next key')

  r = await store.listVersions({ bucket: 'b', keyMarker: 'k2', versionIdMarker: 'b1', limit: 1 })
  t.strictSame(ids(r), ['null'], 'after the last version of a key comes the next key')

  r = await store.listVersions({ bucket: 'b', keyMarker: 'k1', versionIdMarker: 'gone', limit: 1 })
  t.strictSame(ids(r), ['b3'], 'an unknown version marker continues with the next key')

  r = await store.listVersions({ bucket: 'b', keyMarker: 'k3', versionIdMarker: 'null', limit: 9 })
  t.strictSame(ids(r), ['c1', 'c2'], 'null is a version id like any other')

  r = await store.listVersions({ bucket: 'b', delimiter: '/', limit: 10 })
  t.equal(r.entries.length, 9)
  t.strictSame(r.commonPrefixes, ['p/'])
  t.equal(r.isTruncated, false)
  r = await store.listVersions({ bucket: 'b', delimiter: '/', keyMarker: 'k3', limit: 1 })
  t.strictSame([ids(r), r.commonPrefixes, r.isTruncated], [[], ['p/'], false])

  r = await store.listVersions({ bucket: 'b', delimiter: '/', keyMarker: 'k2', limit: 1 })
  t.strictSame(ids(r), ['null'])
  t.equal(r.isTruncated, true)
  r = await store.listVersions({
    bucket: 'b',
    delimiter: '/',
    keyMarker: r.nextKeyMarker,
    versionIdMarker: r.nextVersionIdMarker,
    limit: 1,
  })
  t.strictSame(r.commonPrefixes, ['p/'])
  t.equal(r.nextVersionIdMarker, undefined)
})

t.test('uploads and parts; deleting an upload removes its parts', async (t) => {
  const store = await openStore(t)
  await store.putUpload(upload('b', 'x', 'u1'))
  await store.putUpload(upload('b', 'x', 'u2'))
  await store.putUpload(upload('b', 'y', 'u3'))
  await store.putUpload(upload('b', 'z/1', 'u4'))
  await store.putUpload(upload('c', 'x', 'u5'))
  for (const n of [3, 1, 5, 2, 4, 300]) await store.putPart(part('b', 'x', 'u1', n))
  await store.putPart(part('b', 'x', 'u2', 1))

  let parts = await store.getParts('b', 'x', 'u1')
  t.strictSame(
    parts.parts.map((p) => p.number),
    [1, 2, 3, 4, 5, 300],
  )
  t.equal(parts.isTruncated, false)
  parts = await store.getParts('b', 'x', 'u1', { partNumberMarker: 2, limit: 2 })
  t.strictSame(
    parts.parts.map((p) => p.number),
    [3, 4],
  )
  t.equal(parts.isTruncated, true)
  t.equal(parts.nextPartNumberMarker, 4)
  parts = await store.getParts('b', 'x', 'u1', { partNumberMarker: 255 })
  t.strictSame(
    parts.parts.map((p) => p.number),
    [300],
  )

  const seen: string[] = []
  let keyMarker: string | undefined
  let uploadIdMarker: string | undefined
  for (;;) {
    const r = await store.listUploads({ bucket: 'b', keyMarker, uploadIdMarker, limit: 1 })
    seen.push(...r.uploads.map((u) => `${u.key}:${u.uploadId}`))
    if (!r.isTruncated) break
    keyMarker = r.nextKeyMarker
    uploadIdMarker = r.nextUploadIdMarker
  }
  t.strictSame(seen, ['x:u1', 'x:u2', 'y:u3', 'z/1:u4'])
  let r = await store.listUploads({ bucket: 'b', prefix: 'z/', limit: 10 })
  t.strictSame(
    r.uploads.map((u) => u.uploadId),
    ['u4'],
  )
  r = await store.listUploads({ bucket: 'b', keyMarker: 'x', limit: 10 })
  t.strictSame(
    r.uploads.map((u) => u.uploadId),
    ['u3', 'u4'],
  )

  t.equal(await store.deleteUpload('b', 'x', 'u1'), true)
  t.equal(await store.getUpload('b', 'x', 'u1'), undefined)
  t.strictSame((await store.getParts('b', 'x', 'u1')).parts, [], 'its parts are gone')
  t.equal((await store.getParts('b', 'x', 'u2')).parts.length, 1, 'other uploads keep theirs')
  t.equal(await store.deleteUpload('b', 'x', 'u1'), false)

  // In one batch, ops apply in order: a part put before the delete goes with it…
  await store.batch([
    { type: 'putPart', record: part('b', 'x', 'u2', 9) },
    { type: 'deleteUpload', bucket: 'b', key: 'x', uploadId: 'u2' },
  ])
  t.strictSame((await store.getParts('b', 'x', 'u2')).parts, [])
  // …and one put after it stays.
  await store.batch([
    { type: 'deleteUpload', bucket: 'b', key: 'y', uploadId: 'u3' },
    { type: 'putPart', record: part('b', 'y', 'u3', 1) },
  ])
  t.equal((await store.getParts('b', 'y', 'u3')).parts.length, 1)

  // Completing an upload: commit the version and drop the upload atomically.
  await store.batch([
    { type: 'putVersion', record: version('b', 'z/1', 'v1', 10) },
    { type: 'deleteUpload', bucket: 'b', key: 'z/1', uploadId: 'u4' },
  ])
  t.equal((await store.getVersion('b', 'z/1', 'v1'))?.etag, 'etag-v1')
  t.equal(await store.getUpload('b', 'z/1', 'u4'), undefined)

  // Settling a completion: the parts go and the record becomes `completed`, in one lazy batch
  // (no flush of its own); completed and completing uploads are not listed as in progress.
  await store.putUpload({ ...upload('c', 'k', 'u6'), completing: { versionId: 'v', modTime: 5 } })
  for (const n of [1, 2]) await store.putPart(part('c', 'k', 'u6', n))
  await store.putUpload({ ...upload('c', 'k', 'u7'), completing: { versionId: 'v', modTime: 6 } })
  const before = store.commitStats
  t.equal(
    await store.replaceUpload(
      { ...upload('c', 'k', 'u6'), completed: { versionId: 'v', modTime: 5, etag: 'e-2' } },
      { lazy: true },
    ),
    true,
  )
  t.equal(store.commitStats.batches, before.batches + 1, 'one batch')
  t.strictSame((await store.getParts('c', 'k', 'u6')).parts, [], 'the parts went')
  t.equal((await store.getUpload('c', 'k', 'u6'))?.completed?.etag, 'e-2', 'the record stays')
  t.strictSame(
    (await store.listUploads({ bucket: 'c', limit: 10 })).uploads.map((u) => u.uploadId),
    ['u5'],
    'only the upload in progress is listed',
  )
  t.strictSame(
    (await store.completedUploads(6)).map((u) => u.uploadId),
    ['u6'],
    'completedUploads: those completed before the time given',
  )
})

t.test('buckets and system records', async (t) => {
  const store = await openStore(t)
  for (const name of ['zeta', 'alpha', 'mid']) {
    await store.putBucket({ name, project: '', created: 1, versioning: 'unversioned' })
  }
  t.strictSame(
    (await store.listBuckets()).map((b) => b.name),
    ['alpha', 'mid', 'zeta'],
  )
  t.equal(await store.bucketHasVersions('alpha'), false)
  await store.putVersion(version('alpha', 'k', 'v', 1, { deleteMarker: true }))
  await store.putVersion(version('alphabet', 'k', 'v', 1))
  t.equal(await store.bucketHasVersions('alpha'), true, 'a delete marker counts')
  t.equal(await store.bucketHasVersions('alph'), false, 'bucket names do not share prefixes')
  await store.deleteVersion('alpha', 'k', 'v')
  t.equal(await store.bucketHasVersions('alpha'), false)

  await store.putSystem('iam/users/bob', { name: 'bob' })
  await store.putSystem('iam/users/alice', { name: 'alice' })
  await store.putSystem('iam/groups/x', 1)
  await store.putSystem('iam/users', 'not a user')
  await store.putSystem('other', 2)
  t.strictSame(await store.listSystem('iam/users/'), [
    { key: 'iam/users/alice', value: { name: 'alice' } },
    { key: 'iam/users/bob', value: { name: 'bob' } },
  ])
  // Five, and the tombstone of the version deleted above.
  t.equal((await store.listSystem('')).length, 6)
  t.equal((await store.listSystem('local/tomb/')).length, 1, 'a deleted version leaves a tombstone')
  t.equal((await store.listSystem('iam/')).length, 4)
  t.ok(await store.wasDeleted(version('alpha', 'k', 'v', 1)), 'the deleted version is known')
  const later = (Date.now() + 60_000) * 4096
  t.notOk(await store.wasDeleted(version('alpha', 'k', 'v', later)), 'a later write is not')
})

t.test("a repair's write and a client's delete of the same key never interleave", async (t) => {
  const store = await MetaStore.open({ path: join(t.testdir(), 'meta') })
  t.teardown(() => store.close())
  const now = Date.now()
  const rec = (key: string) => version('b', key, 'null', now * 4096)
  // The repair read the set before the delete; both steps start in the same tick, so without
  // sections each reads before the other writes: the delete finds nothing and leaves only a
  // tombstone, the repair finds no tombstone and writes the version back.
  for (const first of ['repair', 'delete'] as const) {
    const keys = Array.from({ length: 20 }, (_, i) => `${first}-${i}`)
    const outcomes = await Promise.all(
      keys.map(async (key) => {
        const repair = () => store.restoreVersion(rec(key), now - 1000)
        const remove = () => store.removeVersion('b', key, 'null')
        return first === 'repair'
          ? (await Promise.all([repair(), remove()]))[0].outcome
          : (await Promise.all([remove(), repair()]))[1].outcome
      }),
    )
    t.same(
      new Set(outcomes),
      new Set([first === 'repair' ? 'written' : 'deleted']),
      `${first} first: the ${first === 'repair' ? 'write lands, then the delete' : 'repair sees the delete'}`,
    )
    const left = await Promise.all(keys.map((key) => store.getVersion('b', key, 'null')))
    t.equal(
      left.filter((v) => v !== undefined).length,
      0,
      `${first} first: every key stays deleted`,
    )
  }

  // A delete before the set was read, of a version the drive did not hold, does not stop a
  // repair of a later version under the same versionId; a delete since the read does.
  await store.removeVersion('b', 'old', 'null')
  const readAt = Date.now() + 1
  await new Promise((r) => setTimeout(r, 5))
  const later = version('b', 'old', 'null', (readAt + 1) * 4096)
  t.same(await store.restoreVersion(later, readAt), { outcome: 'written' })
  const newer = version('b', 'old', 'null', (readAt + 2) * 4096)
  t.same(
    await store.restoreVersion(later, readAt),
    { outcome: 'written', current: later },
    'the same version written again replaces itself',
  )
  await store.putVersion(newer)
  t.same(
    await store.restoreVersion(later, readAt),
    { outcome: 'newer', current: newer },
    'a newer write stays',
  )
  await store.removeVersion('b', 'old', 'null')
  t.same(
    await store.restoreVersion(newer, readAt),
    { outcome: 'deleted' },
    'a delete since the read stops the write',
  )
  t.equal(await store.getVersion('b', 'old', 'null'), undefined)

  // Healing dropping a stale 'null' leftover just before it writes the version the set agrees
  // on is no client's delete: the write goes ahead.
  const stale = version('b', 'over', 'null', now * 4096)
  await store.putVersion(stale)
  const healAt = Date.now()
  await store.deleteVersion('b', 'over', 'null', stale, { leftover: true })
  const agreed = version('b', 'over', 'null', (now + 1) * 4096)
  t.same(await store.restoreVersion(agreed, healAt), { outcome: 'written' }, 'after a leftover')

  // A failing section does not hold up the next one of its key.
  await t.rejects(
    store.exclusive('b', 'x', async () => {
      throw new Error('boom')
    }),
    /boom/,
  )
  t.equal(await store.exclusive('b', 'x', async () => 7), 7)
})

t.test("a gateway's undo removes only the write it undoes", async (t) => {
  const store = await MetaStore.open({ path: join(t.testdir(), 'meta') })
  t.teardown(() => store.close())
  const now = Date.now() * 4096
  const failed = version('b', 'k', 'null', now)
  const newer = version('b', 'k', 'null', now + 4096)
  // The undo arrives after a newer overwrite committed here: the newer one stays.
  await store.putVersion(newer)
  t.equal(await store.removeVersion('b', 'k', 'null', failed.modTime), undefined, 'nothing removed')
  t.same(await store.getVersion('b', 'k', 'null'), newer, 'the newer write stays')
  t.notOk(await store.wasDeleted(newer, Date.now() - 1000), 'and no repair of it stands down')
  // The undo of the write itself removes it.
  await store.putVersion(failed)
  t.same(await store.removeVersion('b', 'k', 'null', failed.modTime), failed, 'removed')
  t.equal(await store.getVersion('b', 'k', 'null'), undefined)
  // The undo arrives before the write's own commit: that commit, when it comes, is stale.
  const other = version('b', 'late', 'null', now)
  await store.removeVersion('b', 'late', 'null', other.modTime)
  t.ok(await store.deletedBefore(other), 'a late commit of the undone write is dropped')
  t.notOk(
    await store.deletedBefore(version('b', 'late', 'null', now + 4096)),
    'a later write is not',
  )
  // A client's delete remembered here is kept as it is (it names the version it deleted).
  const gone = version('b', 'gone', 'null', now)
  await store.putVersion(gone)
  await store.removeVersion('b', 'gone', 'null')
  await store.removeVersion('b', 'gone', 'null', now + 8192)
  t.ok(await store.wasDeleted(gone), "the client's delete is still known")
})

t.test('warm point lookups stay on the event loop', async (t) => {
  // Warm lookups stay on the event loop, even when some are slow (a thread losing its core).
  const warm = await openStore(t)
  await putAll(
    warm,
    Array.from({ length: 200 }, (_, i) => version('b', `k${i}`, 'null', i + 1)),
  )
  for (let i = 0; i < 1000; i++) await warm.getVersion('b', `k${i % 200}`, 'null')
  t.equal(warm.readStats.async, 0, 'warm: no lookup through the thread pool')
  t.ok(warm.readStats.sync >= 1000, 'warm: synchronous')
})

t.test(
  'cold lookups (the page cache dropped) go through the thread pool, and stay right',
  { skip: process.getuid?.() !== 0 ? 'dropping the page cache needs root' : false },
  async (t) => {
    // Cold: a store much larger than one block per lookup, its pages dropped from memory.
    const path = join(t.testdir(), 'cold')
    const build = await MetaStore.open({ path })
    const meta = (i: number) => ({ note: `${i}`.repeat(40) })
    await putAll(
      build,
      Array.from({ length: 40_000 }, (_, i) =>
        version('b', `obj/${(i * 7919) % 40_000}`, 'null', i + 1, { userMeta: meta(i) }),
      ),
    )
    await build.close()
    execFileSync('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' })
    const cold = await MetaStore.open({ path, slowReadMs: 0 })
    t.teardown(() => cold.close())
    const rng = new Rng()
    for (let n = 0; n < 400; n++) {
      const i = rng.next() % 40_000
      const v = await cold.getVersion('b', `obj/${(i * 7919) % 40_000}`, 'null')
      if (v?.userMeta?.note !== meta(i).note) {
        t.fail(`lookup ${n} of record ${i} gave ${JSON.stringify(v?.userMeta)}`)
        return
      }
    }
    const stats = cold.readStats
    t.ok(stats.slow >= 2, `lookups that read the disk were seen (${stats.slow})`)
    t.ok(stats.async > 0, `later lookups went through the thread pool (${stats.async})`)
    // Writes read through the thread pool too while it lasts, and see what they must.
    await cold.putVersion(version('b', 'obj/1', 'null', 10_000_000))
    t.equal((await cold.getVersion('b', 'obj/1', 'null'))?.modTime, 10_000_000, 'replaced')
    t.equal(await cold.getVersion('b', 'obj/none', 'null'), undefined, 'a missing key')
  },
)

t.test('group commit: concurrent writers share synced batches', async (t) => {
  const path = join(t.testdir(), 'meta')
  let store = await MetaStore.open({ path })
  const before = store.commitStats
  await Promise.all(
    Array.from({ length: 64 }, (_, i) => store.putVersion(version('g', `k${i}`, 'null', 100 + i))),
  )
  const after = store.commitStats
  t.equal(after.writes - before.writes, 64)
  t.ok(
    after.batches - before.batches <= 4,
    `64 writes in ${after.batches - before.batches} batches`,
  )

  // Writers that keep writing: each round of their writes shares one batch.
  const b0 = store.commitStats
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 20; i++) await store.putSystem(`w${w}/${i}`, i)
    }),
  )
  const b1 = store.commitStats
  t.equal(b1.writes - b0.writes, 160)
  t.ok(b1.batches - b0.batches <= 40, `160 writes in ${b1.batches - b0.batches} batches`)

  // A lone writer: one batch, hence one sync, per write.
  const c0 = store.commitStats
  for (let i = 0; i < 5; i++) await store.putSystem(`lone/${i}`, i)
  t.equal(store.commitStats.batches - c0.batches, 5)

  // A bad record fails alone; the group it would have joined commits.
  const results = await Promise.allSettled([
    store.putVersion(version('g', 'ok', 'v', 1)),
    store.putVersion(version('g', 'bad', 'v', -1)),
  ])
  t.equal(results[0].status, 'fulfilled')
  t.equal(results[1].status, 'rejected')

  await store.close()
  store = await MetaStore.open({ path })
  t.teardown(() => store.close())
  const listed = await store.listLatest({ bucket: 'g', limit: 100 })
  t.equal(listed.entries.length, 65, 'everything acknowledged is there after reopening')
  for (let i = 0; i < 64; i++) {
    if ((await store.getVersion('g', `k${i}`, 'null'))?.modTime !== 100 + i) t.fail(`k${i}`)
  }
  t.equal((await store.listSystem('w')).length, 160)
})

t.test('errors carry codes and name the store', async (t) => {
  const path = join(t.testdir(), 'meta')
  const store = await MetaStore.open({ path })
  const second = await MetaStore.open({ path }).catch((err: unknown) => err)
  t.ok(second instanceof MetaStoreError)
  t.equal((second as MetaStoreError).code, 'META_IO', 'a store open elsewhere (LOCK)')
  t.match((second as Error).message, path)

  const pending = store.putSystem('late', 1)
  await store.close()
  await pending
  const closedWrite = await store.putSystem('x', 1).catch((err: unknown) => err)
  t.equal((closedWrite as MetaStoreError).code, 'DRIVE_OFFLINE')
  const closedRead = await store.getBucket('x').catch((err: unknown) => err)
  t.equal((closedRead as MetaStoreError).code, 'DRIVE_OFFLINE')
  const closedList = await store.listLatest({ bucket: 'x', limit: 1 }).catch((e: unknown) => e)
  t.equal((closedList as MetaStoreError).code, 'DRIVE_OFFLINE')

  const reopened = await MetaStore.open({ path })
  t.equal(await reopened.getSystem('late'), 1, 'a write queued before close was committed')
  await reopened.close()

  // LevelDB reports a full disk in its message; codes are classified from the cause chain.
  const full = MetaStoreError.from(
    new Error('IO error: /d/.tessera/meta/000005.log: No space left on device'),
    '/d/.tessera/meta',
    'commit',
  )
  t.equal(full.code, 'DRIVE_FULL')
  t.match(full.message, '/d/.tessera/meta')
  const nested = new Error('Write failed', {
    cause: Object.assign(new Error('write'), { code: 'ENOSPC' }),
  })
  t.equal(MetaStoreError.from(nested, '/d', 'commit').code, 'DRIVE_FULL')
  t.equal(MetaStoreError.from(new Error('Corruption: bad block'), '/d', 'read').code, 'META_IO')
})

const asRoot = process.getuid?.() === 0
t.test(
  'a full drive fails writes with DRIVE_FULL',
  { skip: !asRoot && 'needs root' },
  async (t) => {
    // A real full file system: a 512 KiB tmpfs (outside tap's fixtures, which it removes itself).
    const dir = mkdtempSync(join(tmpdir(), 'tessera-full-'))
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir], { stdio: 'ignore' })
    } catch (err) {
      rmSync(dir, { recursive: true, force: true })
      t.pass('skipped', { skip: `cannot mount a small tmpfs here: ${(err as Error).message}` })
      return
    }
    let store: MetaStore | undefined
    t.teardown(async () => {
      await store?.close().catch(() => {})
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
      rmSync(dir, { recursive: true, force: true })
    })
    store = await MetaStore.open({ path: join(dir, 'meta') })
    const big = new Uint8Array(200 * 1024).fill(7)
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        store.putVersion(version('f', `k${i}`, 'v', 1, { inline: big })),
      ),
    )
    const codes = results.map((r) =>
      r.status === 'rejected' ? (r.reason as MetaStoreError).code : 'ok',
    )
    t.ok(codes.includes('DRIVE_FULL'), `codes: ${codes.join(', ')}`)
    t.ok(
      codes.every((c) => c === 'ok' || c === 'DRIVE_FULL'),
      'every failed writer sees its group’s error',
    )
    const failed = results.find((r) => r.status === 'rejected')
    t.match((failed as PromiseRejectedResult).reason.message, join(dir, 'meta'))
  },
)

t.test('key encoding sorts like the strings it encodes (seeded property test)', async (t) => {
  const strings = Array.from({ length: 3000 }, () => randomString(6))
  const pairs = strings.map((s) => ({ s, k: versionKey('bkt', s, 5, 'v') }))
  const byString = [...pairs].sort((a, b) => utf8Order(a.s, b.s))
  const byKey = [...pairs].sort((a, b) => compareKeys(a.k, b.k))
  t.strictSame(
    byKey.map((p) => p.s),
    byString.map((p) => p.s),
    'key order is UTF-8 byte order',
  )

  let roundTrips = 0
  let prefixMismatches = 0
  for (const { s, k } of pairs.slice(0, 1000)) {
    const d = decodeVersionKey(k)
    if (d.bucket === 'bkt' && d.key === s && d.modTime === 5 && d.versionId === 'v') roundTrips++
    const p = randomString(2)
    const lo = versionScanPrefix('bkt', p)
    const hi = prefixEnd(lo) ?? Buffer.from([0xff])
    const inRange = compareKeys(k, lo) >= 0 && compareKeys(k, hi) < 0
    if (inRange !== Buffer.from(s).subarray(0, Buffer.byteLength(p)).equals(Buffer.from(p))) {
      prefixMismatches++
    }
  }
  t.equal(roundTrips, 1000, 'keys decode to what was encoded')
  t.equal(prefixMismatches, 0, 'a prefix scan covers exactly the keys with that prefix')

  // Components compare one after another: bucket first, then key, then newest time first.
  const tuples = Array.from({ length: 2000 }, () => ({
    bucket: randomString(2),
    key: randomString(3),
    time: rng.int(0, 5) * 2 ** rng.int(0, 50),
    id: randomString(2),
  }))
  const sortedByKey = [...tuples].sort((a, b) =>
    compareKeys(
      versionKey(a.bucket, a.key, a.time, a.id),
      versionKey(b.bucket, b.key, b.time, b.id),
    ),
  )
  const sortedByTuple = [...tuples].sort(
    (a, b) =>
      utf8Order(a.bucket, b.bucket) ||
      utf8Order(a.key, b.key) ||
      b.time - a.time ||
      utf8Order(a.id, b.id),
  )
  t.strictSame(sortedByKey, sortedByTuple)

  t.same(
    [...encodeModTime(Number.MAX_SAFE_INTEGER)],
    [0, 0, 0, 0, 0, 0, 0, 0],
    'the largest time sorts first',
  )
  t.throws(() => versionKey('b', 'lone \uD800 half', 1, 'v'), RangeError)
  t.throws(() => encodeModTime(-1), RangeError)
  t.throws(() => encodeModTime(2 ** 53), RangeError)
})
