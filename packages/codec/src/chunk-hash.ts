import xxhash from 'xxhash-wasm'

/** Hashes shard chunks with xxh64 (seed 0), as stored before every chunk in a shard file. */
export type ChunkHasher = (chunk: Uint8Array) => bigint

// Chunk headers are written as native BigUint64Array entries and read back as little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('@tessera/codec runs on little-endian hosts only (x86-64, arm64)')
}

let hasher: Promise<ChunkHasher> | undefined

/** The thread's xxh64, loaded once (xxhash-wasm instantiates a small WASM module). */
export function loadChunkHasher(): Promise<ChunkHasher> {
  hasher ??= xxhash().then((api) => (chunk: Uint8Array) => api.h64Raw(chunk))
  return hasher
}

/** xxh64 of each chunk, as 8 little-endian bytes each. */
export function hashChunks(h64: ChunkHasher, chunks: readonly Uint8Array[]): BigUint64Array {
  const out = new BigUint64Array(chunks.length)
  chunks.forEach((c, i) => {
    out[i] = h64(c)
  })
  return out
}
