/**
 * The digest thread's worker (see digest-thread.ts): one node:crypto Hash per algorithm per
 * session, fed from the shared ring in the order the pieces were copied in.
 */
import { createHash, type Hash } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import {
  CONSUMED,
  type DigestReply,
  type DigestRequest,
  type DigestWorkerData,
  WAITING,
} from './digest-thread.ts'

const port = parentPort
if (port === null) throw new Error('digest-worker.js runs as a worker thread')
const { ring: ringBuffer, control: controlBuffer } = workerData as DigestWorkerData
const ring = new Uint8Array(ringBuffer)
const control = new Int32Array(controlBuffer)
const size = ring.length
let consumed = 0
const sessions = new Map<number, Map<string, Hash>>()
const reply = (m: DigestReply) => port.postMessage(m)

/** Hashes the next `bytes` of the ring for `hashes` (none: a dropped session's, skipped). */
function take(hashes: Map<string, Hash> | undefined, bytes: number): void {
  try {
    if (hashes !== undefined) {
      const pos = consumed % size
      const first = Math.min(bytes, size - pos)
      for (const h of hashes.values()) {
        h.update(ring.subarray(pos, pos + first))
        if (first < bytes) h.update(ring.subarray(0, bytes - first))
      }
    }
  } finally {
    // The bytes are free once read, whatever happened: the ring must move on.
    consumed += bytes
    Atomics.store(control, CONSUMED, consumed | 0)
    if (Atomics.exchange(control, WAITING, 0) === 1) reply({ op: 'space' })
  }
}

port.on('message', (m: DigestRequest) => {
  try {
    switch (m.op) {
      case 'open':
        sessions.set(m.id, new Map(m.algorithms.map((a) => [a, createHash(a)])))
        break
      case 'update':
        take(sessions.get(m.id), m.bytes)
        break
      case 'digest': {
        const hashes = sessions.get(m.id)
        sessions.delete(m.id)
        if (hashes === undefined) {
          reply({ op: 'error', id: m.id, message: `no session ${m.id}` })
          break
        }
        const digests: Record<string, Uint8Array> = {}
        for (const [alg, h] of hashes) digests[alg] = new Uint8Array(h.digest())
        reply({ op: 'digest', id: m.id, digests })
        break
      }
      case 'drop':
        sessions.delete(m.id)
        break
    }
  } catch (err) {
    sessions.delete(m.id)
    reply({ op: 'error', id: m.id, message: (err as Error).message })
  }
})
