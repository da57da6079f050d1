import t from 'tap'
import { laterRecord, latestMeta, type VersionRecord } from '../src/records.ts'

function rec(modTime: number, metaTime?: number, index = 0): VersionRecord {
  return {
    bucket: 'b',
    key: 'k',
    versionId: 'null',
    modTime,
    ...(metaTime === undefined ? {} : { metaTime }),
    size: 1,
    etag: 'e',
    erasure: { k: 2, m: 2, blockSize: 1024, distribution: [0, 1, 2, 3], index },
    parts: [],
    deleteMarker: false,
  }
}

t.test('laterRecord orders by modTime, then by the last metadata change', async (t) => {
  t.ok(laterRecord(rec(2), rec(1)), 'a newer version')
  t.notOk(laterRecord(rec(1), rec(2)), 'an older version')
  t.notOk(laterRecord(rec(2, 9), rec(3)), 'a newer version beats any metadata change')
  t.ok(laterRecord(rec(2, 5), rec(2)), 'a changed record beats the unchanged one')
  t.ok(laterRecord(rec(2, 6), rec(2, 5)), 'a later change beats an earlier one')
  t.notOk(laterRecord(rec(2, 5), rec(2, 6)), 'an earlier change does not')
  t.notOk(laterRecord(rec(2, 5), rec(2, 5)), 'the same state is not later')
  t.notOk(laterRecord(rec(2), rec(2)), 'nor is an unchanged one')
})

t.test('latestMeta picks the latest change among copies of one version', async (t) => {
  const copies = [rec(2, undefined, 0), rec(2, 7, 1), rec(2, 5, 2), rec(2, 7, 3)]
  t.equal(latestMeta(copies).erasure.index, 1, 'the first copy with the latest change')
  t.equal(latestMeta([rec(2, undefined, 3), rec(2, undefined, 1)]).erasure.index, 3, 'no change')
  t.equal(latestMeta([rec(2, 5, 0)]).metaTime, 5, 'a single copy')
})
