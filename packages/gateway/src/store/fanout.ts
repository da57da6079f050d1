/* Design notes

A PUT encodes the body block by block and sends shard i of every block to drive i, n streams
at once. Fanout sits between the encoder and those n streams: the encoder adds blocks, each
drive's stream pulls its own chunk of each block in order. A block's buffers go back to the
encoder (release) once every live stream has moved past it, and the encoder may run at most
`window` blocks ahead of the slowest live stream: the slowest drive sets the pace, and the
client socket (which feeds the encoder) is paused in turn, so memory stays bounded by window
blocks of stripe + parity per request whatever the object size.

A stream that fails (its PutShard call ended with an error) is killed: it stops holding back
the others and its blocks are released for it. The PUT continues as long as at least the
write quorum of streams is alive.
*/
import type { EncodedBlock } from '@tessera/codec'

export class Fanout {
  readonly #n: number
  readonly #window: number
  #blocks = new Map<number, EncodedBlock>()
  #produced = 0
  #pos: number[]
  #alive: boolean[]
  #ended = false
  #error: Error | undefined
  #readers: ((() => void) | undefined)[]
  #writer: (() => void) | undefined

  constructor(n: number, window = 2) {
    this.#n = n
    this.#window = window
    this.#pos = new Array(n).fill(0)
    this.#alive = new Array(n).fill(true)
    this.#readers = new Array(n).fill(undefined)
  }

  get aliveCount(): number {
    return this.#alive.filter(Boolean).length
  }

  isAlive(i: number): boolean {
    return this.#alive[i] === true
  }

  /** Blocks stream i has sent so far. */
  position(i: number): number {
    return this.#pos[i] ?? 0
  }

  /** Adds the next block, then waits until the slowest live stream is within the window. */
  async add(block: EncodedBlock): Promise<void> {
    if (this.#error) {
      block.release()
      throw this.#error
    }
    this.#blocks.set(this.#produced++, block)
    for (let i = 0; i < this.#n; i++) this.#wake(i)
    this.#releaseDone()
    while (!this.#error && this.#produced - this.#minPos() > this.#window) {
      await new Promise<void>((r) => {
        this.#writer = r
      })
    }
    if (this.#error) throw this.#error
  }

  /** No more blocks: streams end after the last one. */
  end(): void {
    this.#ended = true
    for (let i = 0; i < this.#n; i++) this.#wake(i)
  }

  /** Stops everything: streams end with `err`, the producer's next add throws it. */
  fail(err: Error): void {
    if (this.#error) return
    this.#error = err
    for (let i = 0; i < this.#n; i++) this.#wake(i)
    this.#writer?.()
    for (const b of this.#blocks.values()) b.release()
    this.#blocks.clear()
  }

  /** Marks stream i dead (its drive failed): it no longer holds the others back. */
  kill(i: number): void {
    if (!this.#alive[i]) return
    this.#alive[i] = false
    this.#wake(i)
    this.#releaseDone()
    this.#writer?.()
  }

  /** The framed bytes of shard i: [xxh64][chunk] per block, in order. */
  async *stream(i: number): AsyncGenerator<Uint8Array> {
    for (let b = 0; ; b++) {
      while (!this.#error && this.#alive[i] && b >= this.#produced && !this.#ended) {
        await new Promise<void>((r) => {
          this.#readers[i] = r
        })
      }
      if (this.#error) throw this.#error
      if (!this.#alive[i]) return
      if (b >= this.#produced) return
      const block = this.#blocks.get(b)
      if (block === undefined) throw new Error(`block ${b} was released before shard ${i} sent it`)
      yield block.headers[i]!
      yield block.shards[i]!
      // Resumed: the channel has sealed the chunk, so this stream is done with block b.
      this.#pos[i] = b + 1
      this.#releaseDone()
      this.#writer?.()
    }
  }

  #wake(i: number): void {
    const r = this.#readers[i]
    this.#readers[i] = undefined
    r?.()
  }

  #minPos(): number {
    let min = this.#produced
    for (let i = 0; i < this.#n; i++) if (this.#alive[i]) min = Math.min(min, this.#pos[i]!)
    return min
  }

  #releaseDone(): void {
    const min = this.#minPos()
    for (const [b, block] of this.#blocks) {
      if (b < min) {
        block.release()
        this.#blocks.delete(b)
      }
    }
  }
}
