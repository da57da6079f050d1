/**
 * @packageDocumentation
 * `@tessera/codec`: Reed–Solomon erasure coding over GF(2^8), with a WebAssembly SIMD kernel
 * and a plain TypeScript reference; per-chunk xxh64 framing for shard files; a block
 * streaming encoder and reader; a piscina worker pool that keeps this CPU work off the
 * event loop; and a digest thread for the running MD5 / SHA-256 of request bodies. Pure: no logging, no config files, no sockets.
 *
 * @example
 * ```ts
 * import { ReedSolomon } from '@tessera/codec'
 * const rs = new ReedSolomon({ k: 4, m: 2 })
 * const data = [a, b, c, d]                 // four equal-length Uint8Arrays
 * const [p0, p1] = rs.encode(data)
 * const all = rs.reconstruct([a, undefined, c, undefined, p0, p1]) // any 4 of 6 suffice
 * ```
 */

export {
  type BlockCodec,
  CodecPool,
  type CodecPoolInit,
  InlineCodec,
} from './block-codec.ts'
export type { DecodeResult, EncodeResult } from './block-ops.ts'
export { type ChunkHasher, loadChunkHasher } from './chunk-hash.ts'
export {
  DIGEST_RING_BYTES,
  type DigestAlgorithm,
  type DigestSession,
  type DigestStats,
  DigestThread,
} from './digest-thread.ts'
export { CODEC_ERROR_CODES, CodecError, type CodecErrorCode, isCodecError } from './errors.ts'
export { cauchyEncodingMatrix, gfInv, gfMul } from './gf256.ts'
export {
  type ByteSpan,
  CHUNK_HASH_BYTES,
  DEFAULT_BLOCK_SIZE_BYTES,
  ErasureLayout,
  type ErasureLayoutInit,
} from './layout.ts'
export { MAX_SHARDS, Planner } from './plan.ts'
export { ReedSolomon, type ReedSolomonInit } from './reed-solomon.ts'
export {
  DEFAULT_IN_FLIGHT_BLOCKS,
  type DecodeStreamInit,
  decodeStream,
  donateChunk,
  donateStripe,
  type EncodedBlock,
  type EncodeStreamInit,
  encodeStream,
  SHARD_STALL_MS,
  type ShardCancel,
  type ShardStream,
} from './stream.ts'
