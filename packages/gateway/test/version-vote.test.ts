// The version vote (store/version-vote.ts): which version a set settles on from the answers of
// some of its drives, when more answers are needed, and that no answer short of the whole set
// ever settles differently from what every drive would say about a committed version.
import type { VersionRecord } from '@tessera/protocol'
import t from 'tap'
import { type VoteShape, voteVersion } from '../src/store/version-vote.ts'

const RS22: VoteShape = { n: 4, k: 2, wq: 3 }
const RS42: VoteShape = { n: 6, k: 4, wq: 4 }

function v(modTime: number, index = 0): VersionRecord {
  return {
    bucket: 'b',
    key: 'k',
    versionId: `v${modTime}`,
    modTime,
    size: 0,
    etag: '',
    parts: [],
    erasure: { k: 2, m: 2, blockSize: 65536, index, distribution: [0, 1, 2, 3] },
  } as unknown as VersionRecord
}

/** The vote's outcome in short: the modTime found, 'none' or 'wait'. */
function outcome(answers: (number | undefined)[], shape: VoteShape): number | 'none' | 'wait' {
  const vote = voteVersion(
    answers.map((m, i) => (m === undefined ? undefined : v(m, i))),
    shape,
  )
  return vote.kind === 'found' ? vote.holders[0]!.modTime : vote.kind
}

t.test('RS(2,2): r = 2 agreeing drives settle it', async (t) => {
  t.equal(outcome([5, 5], RS22), 5, 'two drives with the same version')
  t.equal(outcome([undefined, undefined], RS22), 'none', 'two drives without the key')
  t.equal(outcome([5], RS22), 'wait', 'one drive is not enough')
  t.equal(outcome([], RS22), 'wait')
  t.equal(outcome([6, 5], RS22), 'wait', 'they disagree: the newer may be committed')
  t.equal(outcome([5, undefined], RS22), 'wait', 'one has it, one not: it may be committed')
})

t.test('RS(2,2): three answers (one drive silent)', async (t) => {
  t.equal(outcome([6, 5, 5], RS22), 5, 'a newer version on one drive is not committed')
  t.equal(outcome([6, 6, 5], RS22), 6, 'the newer version is on k drives: it is the object')
  t.equal(outcome([5, undefined, undefined], RS22), 'none', 'a leftover on one drive only')
  t.equal(outcome([5, 5, undefined], RS22), 5, 'a drive that missed the write')
  t.equal(outcome([7, 6, 5], RS22), 'none', 'three leftovers: a committed one would be on two')
})

t.test('RS(2,2): every drive answered', async (t) => {
  t.equal(outcome([6, 6, 5, 5], RS22), 6, 'the newest version on k drives wins')
  t.equal(outcome([6, 5, 5, 5], RS22), 5)
  t.equal(outcome([undefined, undefined, undefined, 5], RS22), 'none')
  t.equal(outcome([7, 6, 5, undefined], RS22), 'none', 'three leftovers, none committed')
})

t.test('RS(2,2): two drives down (only two answers)', async (t) => {
  t.equal(outcome([5, 5], RS22), 5, 'what both hold is readable')
  t.equal(outcome([undefined, undefined], RS22), 'none', 'a missing key is still a 404')
  // On three drives (committed) but only one of them answers: unreadable, and not absent.
  t.equal(outcome([5, undefined], RS22), 'wait', 'never a 404 for an object that may exist')
})

t.test('RS(4,2): wq = k = 4, r = 3 absent drives settle a 404', async (t) => {
  t.equal(outcome([5, 5, 5, 5], RS42), 5)
  t.equal(outcome([5, 5, 5], RS42), 'wait')
  t.equal(outcome([undefined, undefined], RS42), 'wait', 'two absent of six prove nothing')
  t.equal(outcome([undefined, undefined, undefined], RS42), 'none', 'three do: wq = 4 of 6')
  t.equal(outcome([6, 5, 5, 5, 5], RS42), 5, 'a newer version on one drive of five answered')
  t.equal(
    outcome([6, 6, 5, 5, 5], RS42),
    'wait',
    'the newer may be on the silent drive too: 3 + 1 ≥ 4',
  )
})

// Every placement of a committed version (on at least wq drives, the newest committed) with
// leftovers of uncommitted writes on the others: whatever subset of drives answers, a vote
// that settles names the committed version (or a newer one on k drives, readable and as good),
// and never 'none'.
t.test('no partial answer contradicts a committed version', async (t) => {
  for (const shape of [RS22, RS42, { n: 5, k: 3, wq: 3 }, { n: 3, k: 1, wq: 2 }]) {
    let checked = 0
    const { n, wq, k } = shape
    // Each drive: 0 = no record, 1 = the committed version (modTime 10), 2 = a newer leftover.
    for (let code = 0; code < 3 ** n; code++) {
      const state: number[] = []
      for (let c = code, i = 0; i < n; i++, c = Math.floor(c / 3)) state.push(c % 3)
      if (state.filter((s) => s === 1).length < wq) continue
      if (state.filter((s) => s === 2).length >= wq) continue
      for (let mask = 1; mask < 2 ** n; mask++) {
        const answers: (number | undefined)[] = []
        for (let i = 0; i < n; i++) {
          if (!(mask & (1 << i))) continue
          answers.push(state[i] === 0 ? undefined : state[i] === 1 ? 10 : 20)
        }
        const got = outcome(answers, shape)
        checked++
        if (got === 'wait') continue
        const newerReadable = got === 20 && answers.filter((a) => a === 20).length >= k
        if (got !== 10 && !newerReadable) {
          t.fail(`n=${n} k=${k} wq=${wq} state ${state} answers ${answers}: ${got}`)
          return
        }
      }
    }
    t.pass(`n=${n} k=${k} wq=${wq}: ${checked} partial answers, none contradicts`)
  }
})
