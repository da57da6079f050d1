/**
 * Every version of a bucket on a drive and on the other drives of its set, key by key: one
 * cursor per drive over pages of its version listing (in key order, newest first within a
 * key), merged by key in UTF-8 byte order, the order of the drives' metadata keys. Memory is one
 * page per drive. A peer whose listing fails is dropped from the rest of the walk and counted
 * as unknown for every key after that; a failure of the local drive's listing ends the walk.
 */
import type { DriveSlot, ListResponse, VersionRecord } from '@tessera/protocol'
import type { SetAccess, VersionPageRequest } from './set-access.ts'

/** Versions per listing page of a peer (metadata only: inline bytes are stripped). */
export const LIST_PAGE_ENTRIES = 256
/** Versions per listing page of the drive itself, whose records carry their inline shards. */
export const LOCAL_PAGE_ENTRIES = 64

/** One key's versions on the drive being scanned and on its peers. */
export interface KeyView {
  key: string
  /** The scanned drive's own records of the key (with inline bytes). */
  local: VersionRecord[]
  /** The records of the key on each peer whose listing is still going (inline bytes stripped). */
  others: { drive: DriveSlot; versions: VersionRecord[] }[]
  /** Peers whose listing failed: they may hold versions of this key. */
  unknown: number
}

type Fetch = (req: Omit<VersionPageRequest, 'bucket'>) => Promise<ListResponse>

class Cursor {
  readonly drive: DriveSlot | undefined
  #fetch: Fetch
  #limit: number
  #entries: VersionRecord[] = []
  #pos = 0
  #more = true
  #keyMarker: string | undefined
  #versionIdMarker: string | undefined
  failed = false
  /** Why it failed. */
  error: Error | undefined

  constructor(drive: DriveSlot | undefined, fetch: Fetch, limit: number) {
    this.drive = drive
    this.#fetch = fetch
    this.#limit = limit
  }

  /** The next entry, reading a page when needed; undefined at the end (or after a failure). */
  async head(): Promise<VersionRecord | undefined> {
    while (this.#pos >= this.#entries.length && this.#more && !this.failed) {
      try {
        const r = await this.#fetch({
          limit: this.#limit,
          ...(this.#keyMarker !== undefined ? { keyMarker: this.#keyMarker } : {}),
          ...(this.#versionIdMarker !== undefined
            ? { versionIdMarker: this.#versionIdMarker }
            : {}),
        })
        this.#entries = r.entries
        this.#pos = 0
        this.#more = r.isTruncated && r.nextKeyMarker !== undefined
        this.#keyMarker = r.nextKeyMarker
        this.#versionIdMarker = r.nextVersionIdMarker
      } catch (err) {
        if (this.drive === undefined) throw err
        this.failed = true
        this.error = err as Error
        this.#entries = []
        this.#pos = 0
      }
    }
    return this.#entries[this.#pos]
  }

  /** Takes every entry of `key` at the head. */
  async take(key: string): Promise<VersionRecord[]> {
    const out: VersionRecord[] = []
    for (;;) {
      const h = await this.head()
      if (h === undefined || h.key !== key) return out
      out.push(h)
      this.#pos++
    }
  }
}

function compareUtf8(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/**
 * Walks every key of `bucket` present on `local` or any of `peers`. `failedPeers` afterwards
 * tells how many peer listings failed along the way.
 */
export class MergedListing {
  readonly #local: Cursor
  readonly #peers: Cursor[]

  constructor(access: SetAccess, local: DriveSlot, peers: DriveSlot[], bucket: string) {
    const fetch =
      (d: DriveSlot): Fetch =>
      (req) =>
        access.listVersions(d, { bucket, ...req })
    this.#local = new Cursor(undefined, fetch(local), LOCAL_PAGE_ENTRIES)
    this.#peers = peers.map((d) => new Cursor(d, fetch(d), LIST_PAGE_ENTRIES))
  }

  get failedPeers(): number {
    return this.#peers.filter((c) => c.failed).length
  }

  /** The errors of the peers whose listing failed. */
  get peerErrors(): { drive: DriveSlot; error: Error }[] {
    return this.#peers.flatMap((c) =>
      c.failed && c.drive && c.error ? [{ drive: c.drive, error: c.error }] : [],
    )
  }

  async *keys(signal?: AbortSignal): AsyncGenerator<KeyView> {
    const all = [this.#local, ...this.#peers]
    for (;;) {
      signal?.throwIfAborted()
      const heads = await Promise.all(all.map((c) => c.head()))
      let min: string | undefined
      for (const h of heads)
        if (h !== undefined && (min === undefined || compareUtf8(h.key, min) < 0)) min = h.key
      if (min === undefined) return
      const key = min
      const [local, ...others] = await Promise.all(all.map((c) => c.take(key)))
      yield {
        key,
        local: local!,
        others: this.#peers.flatMap((c, i) =>
          c.failed ? [] : [{ drive: c.drive!, versions: others[i]! }],
        ),
        unknown: this.failedPeers,
      }
    }
  }
}
