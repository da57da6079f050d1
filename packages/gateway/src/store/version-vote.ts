/**
 * Which version of an object its set's drives settle on, from the answers of some of them.
 *
 * Each drive answers with the newest version record it holds for the key (or none). A
 * committed version sits on at least the write quorum (wq) of the set's n drives, and reading
 * it takes k of its shards. With `unknown` drives not heard from (not asked, failed, or still
 * silent), a version seen on c answering drives may be on at most c + unknown drives in all.
 * Going from the newest version seen down:
 *
 * - seen on k or more drives: that is the object (it can be read, and nothing newer can be
 *   committed, or the step before would have stopped);
 * - seen on fewer than k, but c + unknown ≥ wq: it may be committed and cannot be read from
 *   what answered: wait for more drives (or, with none left to hear from, the answer is not
 *   known: a 503, never a 404 for an object that may exist);
 * - otherwise it is not committed (a write in flight or being undone): look further down.
 *
 * With no readable version: the key has no committed version once at least n - wq + 1 drives
 * answered (every committed version would show on one of them); before that, wait.
 *
 * So any r = n - wq + 1 drives that agree settle the answer, and a drive that stays silent
 * (a frozen node) needs no waiting for once the others have answered.
 */
import type { VersionRecord } from '@tessera/protocol'

/** The set's shape: n drives, k to read, wq to commit. */
export interface VoteShape {
  n: number
  k: number
  wq: number
}

/** What a vote found: a version (with the answers that hold it), none, or not yet known. */
export type Vote = { kind: 'found'; holders: VersionRecord[] } | { kind: 'none' } | { kind: 'wait' }

/**
 * Settles the version from the newest record of each drive that answered (`answers`, one per
 * drive; undefined = the drive holds none). Drives not in `answers` are unknown.
 */
export function voteVersion(
  answers: readonly (VersionRecord | undefined)[],
  shape: VoteShape,
): Vote {
  const unknown = shape.n - answers.length
  const groups = new Map<string, VersionRecord[]>()
  for (const v of answers) {
    if (v === undefined) continue
    const id = `${v.modTime}/${v.versionId}`
    const g = groups.get(id)
    if (g) g.push(v)
    else groups.set(id, [v])
  }
  const newestFirst = [...groups.values()].sort((a, b) => b[0]!.modTime - a[0]!.modTime)
  for (const g of newestFirst) {
    if (g.length >= shape.k) return { kind: 'found', holders: g }
    if (g.length + unknown >= shape.wq) return { kind: 'wait' }
  }
  return answers.length >= shape.n - shape.wq + 1 ? { kind: 'none' } : { kind: 'wait' }
}
