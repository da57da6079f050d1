// Entry of a codec worker thread (loaded by CodecPool through piscina). Runs one task at a
// time and sends every buffer back by transfer.
import { move, transferableSymbol, valueSymbol } from 'piscina'
import type { WorkerFailure } from './block-codec.ts'
import { type CodecTask, runDecode, runEncode, runHash } from './block-ops.ts'
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

export default function run(task: CodecTask): object {
  try {
    switch (task.op) {
      case 'encode': {
        const r = runEncode(task, h64)
        return moving(r, [r.stripe, r.parity, r.hashes])
      }
      case 'decode': {
        const r = runDecode(task, h64)
        return moving(r, r.buffers)
      }
      case 'hash': {
        const hashes = runHash(task, h64).buffer as ArrayBuffer
        return moving({ hashes, chunks: task.chunks }, [hashes, ...task.chunks])
      }
    }
  } catch (err) {
    const e = err as { code?: CodecErrorCode; message?: string; shard?: number; block?: number }
    const failure: WorkerFailure = {
      failure: { code: e.code, message: String(e.message ?? err), shard: e.shard, block: e.block },
    }
    return failure
  }
}
