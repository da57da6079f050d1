import t from 'tap'
import { DriveHealth } from '../src/drive-health.ts'

t.test('a drive is stalled once an operation has waited on it for the stall window', async (t) => {
  const h = new DriveHealth(1000)
  const now = Date.now()
  t.equal(h.stalledFor(now + 60_000), undefined, 'nothing waits: never stalled')
  const write = h.wait()
  t.equal(h.stalledFor(now + 500), undefined, 'within the window')
  t.ok((h.stalledFor(now + 1500) ?? 0) >= 1000, 'past it: stalled, for how long')
  // Reads going through meanwhile (a frozen file system serves them from the page cache) do
  // not clear it: the write is still stuck.
  for (let i = 0; i < 3; i++) h.done(h.wait())
  t.ok(h.stalledFor(now + 1500) !== undefined, 'other operations ending do not clear it')
  t.equal(h.waiting, 1)
  h.done(write)
  t.equal(h.stalledFor(now + 1500), undefined, 'the stuck operation ended: serving again')
  t.equal(h.waiting, 0)
  h.done(write)
  t.equal(h.waiting, 0, 'ending twice is harmless')
})

t.test('the oldest waiting operation decides', async (t) => {
  const h = new DriveHealth(1000)
  const now = Date.now()
  const first = h.wait()
  const second = h.wait()
  h.done(first)
  t.equal(h.stalledFor(now + 900), undefined)
  t.ok(h.stalledFor(now + 2000) !== undefined, 'the second one, still waiting, stalls it')
  h.done(second)
  t.equal(h.stalledFor(now + 2000), undefined)
  t.throws(() => new DriveHealth(0), RangeError, 'the window is positive')
})
