/**
 * The objects of one bucket in one erasure set, key by key, as the set agrees on them: every
 * drive of the set is a cursor over ListRange pages (all versions, no delimiter); the cursors
 * are merged in UTF-8 key order and, for each key, the versions held by at least k drives are
 * kept, newest first. This is the gateway's ListObjectVersions merge (gateway
 * src/store/listing.ts) narrowed to one set; the node cannot import the gateway.
 *
 * A key's versions are all read (across page boundaries) before the key is handed out, so a
 * caller may change that key before asking for the next: every later page starts after a
 * version of a key not handed out yet.
 */
import {
  type Cluster,
  type ErasureSet,
  ListRange,
  type ListRequest,
  type ListResponse,
  StoreError,
  type VersionRecord,
} from '@tessera/protocol'

/** Versions per ListRange page. */
const PAGE = 1000

/** Compares strings in UTF-8 byte order (LevelDB's and S3's), not UTF-16 code unit order. */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (U+10000 and up) sort after U+E000..U+FFFF in UTF-8.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000
    }
    return x < y ? -1 : 1
  }
  return a.length - b.length
}

/** One drive's versions of a bucket, a page at a time. */
class DriveCursor {
  #fetch: (req: ListRequest) => Promise<ListResponse>
  #req: ListRequest
  #items: VersionRecord[] = []
  #at = 0
  #done = false
  dead = false

  constructor(req: ListRequest, fetch: (req: ListRequest) => Promise<ListResponse>) {
    this.#req = req
    this.#fetch = fetch
  }

  async peek(): Promise<VersionRecord | undefined> {
    while (!this.dead && this.#at >= this.#items.length && !this.#done) {
      try {
        const r = await this.#fetch(this.#req)
        this.#items = r.entries
        this.#at = 0
        if (!r.isTruncated || r.nextKeyMarker === undefined) this.#done = true
        else {
          this.#req = { ...this.#req, keyMarker: r.nextKeyMarker }
          if (r.nextVersionIdMarker !== undefined) this.#req.versionIdMarker = r.nextVersionIdMarker
          else delete this.#req.versionIdMarker
        }
      } catch {
        this.dead = true
      }
    }
    return this.dead ? undefined : this.#items[this.#at]
  }

  shift(): void {
    this.#at++
  }
}

/**
 * Every key of `bucket` held in `set`, in key order, with the versions at least the read
 * quorum of its drives agree on, newest first (keys with none are skipped). Fails with
 * QUORUM_FAILED as soon as fewer than `minDrives` drives answer, or a drive stops answering
 * while a key is being read: deciding on a partial view could remove what it does not show.
 */
export async function* agreedKeys(
  cluster: Cluster,
  set: ErasureSet,
  bucket: string,
  minDrives: number,
): AsyncGenerator<{ key: string; versions: VersionRecord[] }> {
  const cursors = set.drives.map(
    (d) =>
      new DriveCursor(
        { pool: d.pool, set: d.set, slot: d.slot, bucket, versions: true, limit: PAGE },
        (req) => cluster.call(d, ListRange, req),
      ),
  )
  const live = () => cursors.filter((c) => !c.dead).length
  const tooFew = () =>
    new StoreError(
      'QUORUM_FAILED',
      `only ${live()} of ${cursors.length} drives of set ${set.pool}/${set.index} answered the listing of ${bucket} (need ${minDrives})`,
    )
  for (;;) {
    let min: string | undefined
    for (const c of cursors) {
      const h = await c.peek()
      if (h !== undefined && (min === undefined || compareUtf8(h.key, min) < 0)) min = h.key
    }
    const before = live()
    if (before < minDrives) throw tooFew()
    if (min === undefined) return
    const counts = new Map<string, { rec: VersionRecord; n: number }>()
    for (const c of cursors) {
      for (let h = await c.peek(); h !== undefined && h.key === min; h = await c.peek()) {
        const id = `${h.modTime}/${h.versionId}`
        const seen = counts.get(id)
        if (seen) seen.n++
        else counts.set(id, { rec: h, n: 1 })
        c.shift()
      }
    }
    if (live() !== before) throw tooFew()
    const versions = [...counts.values()]
      .filter((x) => x.n >= cluster.readQuorum)
      .map((x) => x.rec)
      .sort((a, b) => b.modTime - a.modTime)
    if (versions.length > 0) yield { key: min, versions }
  }
}
