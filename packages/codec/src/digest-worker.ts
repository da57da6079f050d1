/** The digest thread's worker (see digest-thread.ts): one node:crypto Hash per algorithm per session. */
import { createHash, type Hash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'
import type { DigestReply, DigestRequest } from './digest-thread.ts'

const port = parentPort
if (port === null) throw new Error('digest-worker.js runs as a worker thread')
const sessions = new Map<number, Map<string, Hash>>()
const reply = (m: DigestReply, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer)

port.on('message', (m: DigestRequest) => {
  try {
    switch (m.op) {
      case 'open':
        sessions.set(m.id, new Map(m.algorithms.map((a) => [a, createHash(a)])))
        break
      case 'update': {
        const hashes = sessions.get(m.id)
        if (hashes === undefined) break
        for (const h of hashes.values()) h.update(m.data)
        reply({ op: 'hashed', id: m.id, bytes: m.data.length })
        break
      }
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
