// Entry of a codec worker thread (loaded by CodecPool through piscina). Runs one task at a
// time and sends every buffer back by transfer.
import { move, transferableSymbol, valueSymbol } from 'piscina'
import type { WorkerFailure } from './block-codec.ts'
import {
  type BatchTask,
  backingBuffers,
  type CodecTask,
  runDecode,
  runEncode,
  runHash,
} from './block-ops.ts'
import { loadChunkHasher } from './chunk-hash.ts'
import type { CodecErrorCode } from './errors.ts'

const h64 = await loadChunkHasher()

/** Wraps a result so that piscina transfers the listed buffers instead of cloning them. */
function moving<T extends object>(value: T, buffers: ArrayBuffer[]): object {
  // move() marks the wrapper as movable; without it piscina would clone the wrapper itself.
  return move({
    get [transferableSymbol]() {
      return buffers
    },
    get [valueSymbol]() {
      return value
    },
  } as unknown as ArrayBuffer)
}

/** Runs one task; returns its result and the buffers to transfer back, or a failure. */
function runOne(task: CodecTask): { value: object; buffers: ArrayBuffer[] } {
  try {
    switch (task.op) {
      case 'encode': {
        const r = runEncode(task, h64)
        return { value: r, buffers: [r.stripe, r.parity, r.hashes] }
      }
      case 'decode': {
        const r = runDecode(task, h64)
        return { value: r, buffers: backingBuffers(r.buffers) }
      }
      case 'hash': {
        const hashes = runHash(task, h64).buffer as ArrayBuffer
        return { value: { hashes, chunks: task.chunks }, buffers: [hashes, ...task.chunks] }
      }
    }
  } catch (err) {
    const e = err as { code?: CodecErrorCode; message?: string; shard?: number; block?: number }
    const failure: WorkerFailure = {
      failure: { code: e.code, message: String(e.message ?? err), shard: e.shard, block: e.block },
    }
    // The task's buffers are lost to the caller, who gets an error; they are not sent back.
    return { value: failure, buffers: [] }
  }
}

export default function run(message: BatchTask): object {
  const results = message.tasks.map(runOne)
  return moving(
    results.map((r) => r.value),
    // A buffer listed twice in a transfer list is a DataCloneError.
    [...new Set(results.flatMap((r) => r.buffers))],
  )
}
