// A node that goes silent (frozen with SIGSTOP: its sockets stay open, nothing answers, as
// with a cut link) must not cost every call its whole deadline: the channel's pings go
// unanswered, the channel closes as NODE_UNAVAILABLE, and calls fail at once while the peer
// pool redials (none waits on a redial's connect timeout). Once the node answers again, calls
// succeed again.
import { Health, StoreError } from '@tessera/protocol'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'

t.test('a silent node fails calls within the liveness window, then comes back', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 1, k: 1, m: 1 })
  const n1 = c.nodes[0]!
  const peer = c.peer(n1.id)
  t.match(await c.pool.call(peer, Health, {}), { nodeId: n1.id })

  const pid = c.local.pids()[n1.id]
  if (pid === undefined) throw new Error(`no pid for ${n1.id}`)
  process.kill(pid, 'SIGSTOP')
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT')
    } catch {}
  })

  // A deadline far beyond the liveness window: the call must end by the channel's close.
  const first = await c.pool.call(peer, Health, {}, { timeoutMs: 120_000 }).then(
    () => undefined,
    (err: unknown) => err,
  )
  t.type(first, StoreError)
  t.equal((first as StoreError).code, 'NODE_UNAVAILABLE', 'the silent channel closed as dead')
  t.match((first as StoreError).message, /answered nothing/)

  // Calls while the node is known down fail at once with the same code, never a deadline.
  for (let i = 0; i < 5; i++) {
    const err = await c.pool.call(peer, Health, {}, { timeoutMs: 120_000 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.equal((err as StoreError | undefined)?.code, 'NODE_UNAVAILABLE', `call ${i} while down`)
  }

  // Past the back-off, a call probes the silent node with a dial that takes connectTimeoutMs
  // (3 s) to fail; no call waits it out: the prober gives up after a moment, the rest at once.
  let slowest = 0
  let calls = 0
  for (const until = Date.now() + 5000; Date.now() < until; calls++) {
    const at = performance.now()
    const err = await c.pool.call(peer, Health, {}, { timeoutMs: 120_000 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    slowest = Math.max(slowest, performance.now() - at)
    if ((err as StoreError | undefined)?.code !== 'NODE_UNAVAILABLE') {
      t.fail(`call ${calls} while down: ${String(err)}`)
      break
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  t.ok(
    slowest < 1000,
    `${calls} calls over 5 s of probes, none waited on a dial (slowest ${Math.round(slowest)} ms)`,
  )

  process.kill(pid, 'SIGCONT')
  let back = false
  for (let i = 0; i < 200 && !back; i++) {
    back = await c.pool.call(peer, Health, {}).then(
      (h) => h.nodeId === n1.id,
      () => false,
    )
    if (!back) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(back, 'the node answers again after it resumes')
})
