import { CodecError } from './errors.ts'
import { checkParameters } from './plan.ts'

/** Bytes of the xxh64 that precedes every shard chunk in a shard file. */
export const CHUNK_HASH_BYTES = 8
/** Default block size: each block is split into k shard chunks of blockSize / k bytes. */
export const DEFAULT_BLOCK_SIZE_BYTES = 1024 * 1024

export interface ErasureLayoutInit {
  k: number
  m: number
  /** Bytes of object data per block; default 1 MiB. */
  blockSize?: number
}

/** A contiguous byte range of a shard file. */
export interface ByteSpan {
  offset: number
  length: number
}

/**
 * Where the bytes of an object live in its shard files. An object of `size` bytes is cut into
 * blocks of blockSize bytes (the last one shorter); block b is split into k chunks of
 * ceil(len_b / k) bytes (the last data chunk zero-padded) and m parity chunks of that size.
 * Shard file i is the sequence, over blocks, of [xxh64 (8 bytes, little-endian)][chunk i].
 * Every block but the last is full, so block b starts at b · (8 + ceil(blockSize / k)) in
 * every shard file, and a range read touches only the blocks it covers.
 */
export class ErasureLayout {
  readonly k: number
  readonly m: number
  readonly n: number
  readonly blockSize: number
  /** Chunk size of a full block. */
  readonly fullChunkBytes: number

  constructor(init: ErasureLayoutInit) {
    checkParameters(init.k, init.m)
    const blockSize = init.blockSize ?? DEFAULT_BLOCK_SIZE_BYTES
    if (!Number.isInteger(blockSize) || blockSize < init.k) {
      throw CodecError.INVALID_PARAMETERS(
        `blockSize must be an integer of at least k = ${init.k} bytes (got ${blockSize})`,
      )
    }
    this.k = init.k
    this.m = init.m
    this.n = init.k + init.m
    this.blockSize = blockSize
    this.fullChunkBytes = Math.ceil(blockSize / init.k)
  }

  /** Bytes a stripe buffer needs to hold any block's k data chunks. */
  get stripeBytes(): number {
    return this.fullChunkBytes * this.k
  }

  blockCount(size: number): number {
    return Math.ceil(size / this.blockSize)
  }

  /** Bytes of object data in block b of an object of `size` bytes. */
  blockLength(size: number, block: number): number {
    return Math.min(this.blockSize, size - block * this.blockSize)
  }

  /** Chunk size of a block holding `blockLength` bytes of data. */
  chunkBytes(blockLength: number): number {
    return Math.ceil(blockLength / this.k)
  }

  /** Size of each of the n shard files of an object of `size` bytes. */
  shardFileBytes(size: number): number {
    const blocks = this.blockCount(size)
    if (blocks === 0) return 0
    const last = this.chunkBytes(this.blockLength(size, blocks - 1))
    return (blocks - 1) * (CHUNK_HASH_BYTES + this.fullChunkBytes) + CHUNK_HASH_BYTES + last
  }

  /** The blocks that hold bytes [start, end) of an object of `size` bytes. */
  blocksFor(size: number, start: number, end: number): { first: number; last: number } {
    if (
      !(
        Number.isInteger(start) &&
        Number.isInteger(end) &&
        0 <= start &&
        start < end &&
        end <= size
      )
    ) {
      throw CodecError.INVALID_RANGE(
        `range [${start}, ${end}) is not inside an object of ${size} bytes`,
      )
    }
    return {
      first: Math.floor(start / this.blockSize),
      last: Math.floor((end - 1) / this.blockSize),
    }
  }

  /** The part of every shard file that holds blocks first..last (inclusive). */
  shardSpan(size: number, first: number, last: number): ByteSpan {
    const stride = CHUNK_HASH_BYTES + this.fullChunkBytes
    const offset = first * stride
    const end = last * stride + CHUNK_HASH_BYTES + this.chunkBytes(this.blockLength(size, last))
    return { offset, length: end - offset }
  }
}
