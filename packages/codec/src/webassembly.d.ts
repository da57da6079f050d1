// @types/node 20 does not declare the WebAssembly global and lib.dom would bring in the
// whole browser. This declares the part of it the codec uses, as Node 20 implements it.
declare namespace WebAssembly {
  class Module {
    constructor(bytes: BufferSource)
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>)
    readonly exports: Record<string, unknown>
  }
  class Memory {
    readonly buffer: ArrayBuffer
    grow(deltaPages: number): number
  }
  function validate(bytes: BufferSource): boolean
}
type BufferSource = ArrayBufferView | ArrayBuffer
