import t from 'tap'
import { DriveHealth } from '../src/drive-health.ts'

t.test('a drive is stalled once an operation has waited on it for the stall window', async (t) => {
  const h = new DriveHealth(1000)
  const now = Date.now()
  t.equal(h.stalledFor(now + 60_000), undefined, 'nothing waits: never stalled')
  const write = h.begin()
  t.equal(h.stalledFor(now + 500), undefined, 'within the window')
  t.ok((h.stalledFor(now + 1500) ?? 0) >= 1000, 'past it: stalled, for how long')
  // Reads going through meanwhile (a frozen file system serves them from the page cache) do
  // not clear it: the write is still stuck.
  for (let i = 0; i < 3; i++) h.begin().end()
  t.ok(h.stalledFor(now + 1500) !== undefined, 'other operations ending do not clear it')
  t.equal(h.waiting, 1)
  write.end()
  t.equal(h.stalledFor(now + 1500), undefined, 'the stuck operation ended: serving again')
  t.equal(h.waiting, 0)
})

t.test('waits on the network do not count; an ended operation stays ended', async (t) => {
  const h = new DriveHealth(1000)
  const upload = h.begin()
  upload.pause()
  t.equal(h.stalledFor(Date.now() + 5000), undefined, 'paused (awaiting its body): not waiting')
  upload.resume()
  const resumed = Date.now()
  t.equal(h.stalledFor(resumed + 900), undefined, 'waiting again, from when it resumed')
  t.ok(h.stalledFor(resumed + 1100) !== undefined)
  upload.end()
  // A body read that ends after its handler resumes a finished operation: nothing happens.
  upload.resume()
  upload.pause()
  upload.resume()
  t.equal(h.waiting, 0, 'a resume after the end does not bring it back')
  t.equal(h.stalledFor(Date.now() + 60_000), undefined)
})

t.test('the oldest waiting operation decides', async (t) => {
  const h = new DriveHealth(1000)
  const now = Date.now()
  const first = h.begin()
  const second = h.begin()
  first.end()
  t.equal(h.stalledFor(now + 900), undefined)
  t.ok(h.stalledFor(now + 2000) !== undefined, 'the second one, still waiting, stalls it')
  second.end()
  t.equal(h.stalledFor(now + 2000), undefined)
  t.throws(() => new DriveHealth(0), RangeError, 'the window is positive')
})
