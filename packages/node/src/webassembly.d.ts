// @types/node 20 does not declare the WebAssembly global and lib.dom would bring in the whole
// browser; direct-io.ts needs only Memory, whose buffer is page-aligned (see there).
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number
    maximum?: number
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor)
    readonly buffer: ArrayBuffer
  }
}
