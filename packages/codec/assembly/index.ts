// The codec's WebAssembly kernel: GF(2^8) matrix–vector products over byte streams, 32 bytes
// a step, with the nibble-table method: for a coefficient c, tables lo[x] = c·x and
// hi[x] = c·(x << 4) for x < 16 give c·b = lo[b & 15] ^ hi[b >> 4], sixteen bytes at once
// with i8x16.swizzle. The host lays out, per output group, for each input i and each output
// j of the group, the 32 bytes lo(c_ij) ‖ hi(c_ij); inputs sit at inBase + i·inStride.
// Memory is owned by the host: it grows it and places tables, inputs and outputs above
// heapBase().

export {
  dot1,
  dot2,
  dot3,
  dot4,
  dot5,
  dot6,
  dot7,
  dot8,
  MAX_GROUP,
} from './generated/kernels'

/** First byte the host may use; everything below belongs to the module's static data. */
export function heapBase(): usize {
  return (__heap_base + 63) & ~63
}
