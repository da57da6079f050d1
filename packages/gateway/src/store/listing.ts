/* Design notes

LIST of design §4: every drive of every set streams its sorted listing page by page
(ListRange); the gateway merges all these streams by key (UTF-8 byte order, as LevelDB and S3
sort) and keeps only what a read quorum of a set's drives agrees on. A key lives in one set, so
its k-of-n agreement is counted inside that set; a common prefix may come from many sets and is
listed when any one set has it at quorum. Memory is one page per drive, never the bucket.

A key whose agreed newest version is a delete marker is not listed (ListObjects); a version
that fewer than k drives hold (a write that failed and was not yet undone, or a delete that a
drive missed) is not listed either.
*/
import {
  HEDGE_MS,
  ListBrief,
  type ListedVersion,
  type ListRequest,
  type ListResponse,
  StoreError,
} from '@tessera/protocol'
import type { Cluster } from './cluster.ts'

/** Compares strings in UTF-8 byte order (JS compares UTF-16 code units, which differs above U+D7FF). */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (U+10000 and up in UTF-8) sort after U+E000..U+FFFF.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000
    }
    return x < y ? -1 : 1
  }
  return a.length - b.length
}

interface Item {
  name: string
  prefix: boolean
  record?: ListedVersion
}

type FetchPage = (req: ListRequest) => Promise<ListResponse<ListedVersion>>

/** One drive's listing, fetched a page at a time. */
class DriveCursor {
  readonly set: string
  #fetch: FetchPage
  #req: ListRequest
  #items: Item[] = []
  #at = 0
  #done = false
  dead = false

  constructor(set: string, req: ListRequest, fetch: FetchPage) {
    this.set = set
    this.#req = req
    this.#fetch = fetch
  }

  /** The next item, fetching a page when needed; undefined at the end (or when dead). */
  async peek(): Promise<Item | undefined> {
    while (this.waiting) {
      try {
        const r = await this.#fetch(this.#req)
        // Left out of the listing while the page was on its way (see settleHeads).
        if (this.dead) break
        const items: Item[] = [
          ...r.entries.map((e) => ({ name: e.key, prefix: false, record: e })),
          ...r.commonPrefixes.map((p) => ({ name: p, prefix: true })),
        ]
        // Stable: a key's versions stay newest first.
        items.sort((a, b) => compareUtf8(a.name, b.name))
        this.#items = items
        this.#at = 0
        if (!r.isTruncated) this.#done = true
        else if (this.#req.versions) {
          this.#req = {
            ...this.#req,
            ...(r.nextKeyMarker !== undefined ? { keyMarker: r.nextKeyMarker } : {}),
          }
          if (r.nextVersionIdMarker !== undefined) this.#req.versionIdMarker = r.nextVersionIdMarker
          else delete this.#req.versionIdMarker
        } else if (r.nextMarker !== undefined) {
          this.#req = { ...this.#req, startAfter: r.nextMarker }
        } else this.#done = true
        this.#req.limit = 1000
      } catch {
        this.dead = true
      }
    }
    if (this.dead) return undefined
    return this.#items[this.#at]
  }

  /** Whether the next item needs a page not fetched yet. */
  get waiting(): boolean {
    return !this.dead && this.#at >= this.#items.length && !this.#done
  }

  /** The next item of the page in hand; undefined at the end, when dead, or when `waiting`. */
  head(): Item | undefined {
    return this.dead ? undefined : this.#items[this.#at]
  }

  shift(): void {
    this.#at++
  }
}

/**
 * Brings every live cursor of a set to its next item (fetching pages where needed). A drive
 * whose page has not come after `graceMs` is left out of the rest of this listing (a frozen
 * node answers nothing until its channel is declared dead, seconds later), but only when the
 * drives that answered still decide it: `need` of them (Cluster.agreeing: n - wq + k) see
 * every committed version at least k times, as if every drive had answered.
 */
async function settleHeads(
  cursors: readonly DriveCursor[],
  need: number,
  graceMs = HEDGE_MS,
): Promise<void> {
  const waiting = cursors.filter((c) => c.waiting)
  if (waiting.length === 0) return
  await new Promise<void>((resolve) => {
    let left = waiting.length
    let graceOver = false
    let done = false
    const check = (): void => {
      if (done) return
      const answered = cursors.filter((c) => !c.dead && !c.waiting).length
      if (left > 0 && !(graceOver && answered >= need)) return
      done = true
      clearTimeout(timer)
      for (const c of cursors) if (c.waiting) c.dead = true
      resolve()
    }
    const timer = setTimeout(() => {
      graceOver = true
      check()
    }, graceMs)
    for (const c of waiting) {
      void c.peek().then(() => {
        left--
        check()
      })
    }
  })
}

export interface ListQuery {
  bucket: string
  prefix?: string
  delimiter?: string
  maxKeys: number
}

export interface LatestPage {
  entries: ListedVersion[]
  commonPrefixes: string[]
  isTruncated: boolean
  /** The last key or prefix returned, when truncated. */
  nextMarker?: string
}

export interface VersionsPage {
  /** Versions and delete markers in key order, newest first, with isLatest. */
  entries: { record: ListedVersion; isLatest: boolean }[]
  commonPrefixes: string[]
  isTruncated: boolean
  nextKeyMarker?: string
  nextVersionIdMarker?: string
}

/** A cursor on every drive of every set for listing `q` (plus the mode's own fields). */
function openCursors(
  cluster: Cluster,
  q: ListQuery,
  extra: Partial<ListRequest> & { limit: number },
): Map<string, DriveCursor[]> {
  const req: ListRequest = {
    pool: 0,
    set: 0,
    slot: 0,
    bucket: q.bucket,
    ...(q.prefix ? { prefix: q.prefix } : {}),
    ...(q.delimiter ? { delimiter: q.delimiter } : {}),
    ...extra,
  }
  const bySet = new Map<string, DriveCursor[]>()
  for (const set of cluster.sets) {
    const id = `${set.pool}/${set.index}`
    bySet.set(
      id,
      set.drives.map(
        (d) =>
          new DriveCursor(id, { ...req, pool: d.pool, set: d.set, slot: d.slot }, (r) =>
            cluster.call(d, ListBrief, { ...r, brief: true }),
          ),
      ),
    )
  }
  return bySet
}

/** The smallest head name of all live cursors, checking every set still has a read quorum. */
async function nextName(
  bySet: Map<string, DriveCursor[]>,
  cluster: Cluster,
): Promise<string | undefined> {
  let min: string | undefined
  await Promise.all(
    [...bySet.values()].map((cursors) => settleHeads(cursors, cluster.agreeing(cursors.length))),
  )
  for (const [id, cursors] of bySet) {
    if (cursors.filter((c) => !c.dead).length < cluster.readQuorum) {
      throw new StoreError('QUORUM_FAILED', `too few drives of set ${id} answered the listing`)
    }
    for (const c of cursors) {
      const h = c.head()
      if (h && (min === undefined || compareUtf8(h.name, min) < 0)) min = h.name
    }
  }
  return min
}

/** Takes every item named `name` from every cursor, per set. */
async function takeGroup(
  bySet: Map<string, DriveCursor[]>,
  name: string,
  cluster: Cluster,
): Promise<Map<string, Item[][]>> {
  const out = new Map<string, Item[][]>()
  await Promise.all(
    [...bySet].map(async ([id, cursors]) => {
      const perDrive: Item[][] = cursors.map(() => [])
      // A key's items may run on into a drive's next page.
      for (let more = true; more; ) {
        await settleHeads(cursors, cluster.agreeing(cursors.length))
        more = false
        for (const [i, c] of cursors.entries()) {
          for (let h = c.head(); h && h.name === name; h = c.head()) {
            perDrive[i]!.push(h)
            c.shift()
          }
          if (c.waiting) more = true
        }
      }
      const held = perDrive.filter((items) => items.length > 0)
      if (held.length > 0) out.set(id, held)
    }),
  )
  return out
}

/** Versions held by at least `quorum` drives of a set, newest first. */
function agreedVersions(perDrive: Item[][], quorum: number): ListedVersion[] {
  const counts = new Map<string, { rec: ListedVersion; n: number }>()
  for (const items of perDrive) {
    for (const it of items) {
      if (it.prefix || !it.record) continue
      const id = `${it.record.modTime}/${it.record.versionId}`
      const c = counts.get(id)
      if (c) {
        c.n++
        // Holders that missed a change of the version's tags or ACL keep an older metaTime.
        if ((it.record.metaTime ?? 0) > (c.rec.metaTime ?? 0)) c.rec = it.record
      } else counts.set(id, { rec: it.record, n: 1 })
    }
  }
  return [...counts.values()]
    .filter((c) => c.n >= quorum)
    .map((c) => c.rec)
    .sort((a, b) => b.modTime - a.modTime)
}

function prefixAgreed(groups: Map<string, Item[][]>, quorum: number): boolean {
  for (const perDrive of groups.values()) {
    if (perDrive.filter((items) => items.some((i) => i.prefix)).length >= quorum) return true
  }
  return false
}

/** One page of ListObjects (V1 or V2): the latest version of each key, merged across sets. */
export async function listLatest(
  cluster: Cluster,
  q: ListQuery & { startAfter?: string },
): Promise<LatestPage> {
  const page: LatestPage = { entries: [], commonPrefixes: [], isTruncated: false }
  if (q.maxKeys <= 0) return page
  const quorum = cluster.readQuorum
  const bySet = openCursors(cluster, q, {
    ...(q.startAfter !== undefined && q.startAfter !== '' ? { startAfter: q.startAfter } : {}),
    limit: Math.min(1000, q.maxKeys + 2),
  })
  let last: string | undefined
  for (;;) {
    const name = await nextName(bySet, cluster)
    if (name === undefined) return page
    if (page.entries.length + page.commonPrefixes.length >= q.maxKeys) {
      page.isTruncated = true
      if (last !== undefined) page.nextMarker = last
      return page
    }
    const groups = await takeGroup(bySet, name, cluster)
    if (prefixAgreed(groups, quorum)) {
      page.commonPrefixes.push(name)
      last = name
      continue
    }
    let best: ListedVersion | undefined
    for (const perDrive of groups.values()) {
      const v = agreedVersions(perDrive, quorum)[0]
      if (v && (best === undefined || v.modTime > best.modTime)) best = v
    }
    if (best && !best.deleteMarker) {
      page.entries.push(best)
      last = name
    }
  }
}

/** One page of ListObjectVersions, merged across sets. */
export async function listVersions(
  cluster: Cluster,
  q: ListQuery & { keyMarker?: string; versionIdMarker?: string },
): Promise<VersionsPage> {
  const page: VersionsPage = { entries: [], commonPrefixes: [], isTruncated: false }
  if (q.maxKeys <= 0) return page
  const quorum = cluster.readQuorum
  const bySet = openCursors(cluster, q, {
    versions: true,
    ...(q.keyMarker ? { keyMarker: q.keyMarker } : {}),
    ...(q.keyMarker && q.versionIdMarker ? { versionIdMarker: q.versionIdMarker } : {}),
    limit: Math.min(1000, q.maxKeys + 2),
  })
  const room = () => q.maxKeys - page.entries.length - page.commonPrefixes.length
  for (;;) {
    const name = await nextName(bySet, cluster)
    if (name === undefined) return page
    if (room() <= 0) {
      page.isTruncated = true
      return page
    }
    const groups = await takeGroup(bySet, name, cluster)
    if (prefixAgreed(groups, quorum)) {
      page.commonPrefixes.push(name)
      page.nextKeyMarker = name
      delete page.nextVersionIdMarker
      continue
    }
    const versions: ListedVersion[] = []
    for (const perDrive of groups.values()) versions.push(...agreedVersions(perDrive, quorum))
    versions.sort((a, b) => b.modTime - a.modTime)
    // A page that starts inside this key's versions does not start with its latest.
    const continued = name === q.keyMarker && q.versionIdMarker !== undefined
    for (const [i, v] of versions.entries()) {
      if (room() <= 0) {
        page.isTruncated = true
        return page
      }
      page.entries.push({ record: v, isLatest: i === 0 && !continued })
      page.nextKeyMarker = name
      page.nextVersionIdMarker = v.versionId
    }
  }
}
