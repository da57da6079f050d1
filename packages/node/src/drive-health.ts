/**
 * Whether a drive still gets work done. A disk can hang without failing: a dying disk retrying
 * a sector, a stalled controller or network block device, a frozen file system. Its operations
 * then never end, while the node's event loop goes on answering pings, so the gateways do not
 * see a dead node: every call to the drive would cost its caller the whole call deadline, and
 * every request of a set holding the drive would wait on it.
 *
 * So each drive's operations are tracked as they wait on it (DriveHealth), and once one has
 * waited {@link DRIVE_STALL_MS}, the drive counts as stalled: new calls to it fail at once with
 * DRIVE_OFFLINE (guardDrives), the gateways' quorums go on without it (a GET reconstructs from
 * parity, a PUT commits elsewhere), and the drive is reported offline. No single operation on
 * a healthy disk takes that long: a read or write of a piece (at most a block), a metadata
 * batch with its flush, a page of a listing. Other operations going through meanwhile do not
 * clear it: a frozen file system still serves reads from the page cache while its writes hang.
 * The drive serves again as soon as the operations it was stuck on have ended.
 *
 * An operation waits on the drive from its start to its end, except while it waits on the
 * network instead: a PutShard awaiting the next piece of its body from a slow client, a
 * ReadShard whose reader has not asked for more. A long upload that keeps writing is never
 * stalled; one whose writes stop is.
 */
import {
  type DriveRef,
  type Handler,
  type RpcDef,
  type RpcServer,
  StoreError,
  type WithBody,
  withBody,
} from '@tessera/protocol'

/** How long an operation may wait on a drive that gets nothing done before it is stalled. */
export const DRIVE_STALL_MS = 10_000

export class DriveHealth {
  readonly stallMs: number
  /** Operations waiting on the drive, with when they started to (oldest first). */
  readonly #waiting = new Map<DriveOperation, number>()

  constructor(stallMs = DRIVE_STALL_MS) {
    if (!Number.isInteger(stallMs) || stallMs < 1) {
      throw new RangeError(`stallMs must be a positive integer (got ${stallMs})`)
    }
    this.stallMs = stallMs
  }

  /** An operation starts, waiting on the drive until it pauses or ends. */
  begin(): DriveOperation {
    const waiting = this.#waiting
    let state: 'waiting' | 'paused' | 'ended' = 'waiting'
    const op: DriveOperation = {
      pause: () => {
        if (state !== 'waiting') return
        state = 'paused'
        waiting.delete(op)
      },
      resume: () => {
        if (state !== 'paused') return
        state = 'waiting'
        waiting.set(op, Date.now())
      },
      end: () => {
        state = 'ended'
        waiting.delete(op)
      },
    }
    waiting.set(op, Date.now())
    return op
  }

  /**
   * Undefined while no operation has waited on the drive for {@link stallMs}; else how long
   * the oldest one has.
   */
  stalledFor(now = Date.now()): number | undefined {
    // Operations are inserted as they start waiting: the first is the oldest.
    const oldest = this.#waiting.values().next()
    if (oldest.done || now - oldest.value < this.stallMs) return undefined
    return now - oldest.value
  }

  /** Operations waiting on the drive now. */
  get waiting(): number {
    return this.#waiting.size
  }
}

/**
 * One operation on a drive. `pause` while it waits on something else (the network), `resume`
 * when it waits on the drive again, `end` once done: after that the others do nothing, so a
 * late resume (a body read that ends after its handler) cannot leave it waiting for ever.
 */
export interface DriveOperation {
  pause(): void
  resume(): void
  end(): void
}

/** What guardDrives needs of a drive. */
export interface GuardedDrive {
  path: string
  health: DriveHealth
}

function driveRefOf(req: unknown): DriveRef | undefined {
  if (typeof req !== 'object' || req === null) return undefined
  const r = req as Partial<DriveRef>
  return typeof r.pool === 'number' && typeof r.set === 'number' && typeof r.slot === 'number'
    ? { pool: r.pool, set: r.set, slot: r.slot }
    : undefined
}

/**
 * Wraps `rpc.handle` so that every call addressed to a drive (its request names pool, set and
 * slot) is tracked on that drive's health, and refused with DRIVE_OFFLINE while the drive is
 * stalled. `find` gives the drive of a reference (undefined: the handler answers for it).
 * `onChange` hears when a drive's calls start being refused (with how long it has been
 * stalled) and when they are served again (undefined). Call before the handlers are registered.
 */
export function guardDrives(
  rpc: RpcServer,
  find: (ref: DriveRef) => GuardedDrive | undefined,
  onChange: (d: GuardedDrive, stalledMs: number | undefined) => void,
): void {
  const handle = rpc.handle.bind(rpc)
  const refusing = new WeakSet<DriveHealth>()
  rpc.handle = <Req, Res>(def: RpcDef<Req, Res>, fn: Handler<Req, Res>): void => {
    handle(def, async (req, ctx) => {
      const ref = driveRefOf(req)
      const d = ref === undefined ? undefined : find(ref)
      if (d === undefined) return fn(req, ctx)
      const h = d.health
      const stalled = h.stalledFor()
      if (stalled !== undefined) {
        if (!refusing.has(h)) {
          refusing.add(h)
          onChange(d, stalled)
        }
        throw new StoreError(
          'DRIVE_OFFLINE',
          `drive ${d.path} has had an operation waiting on it for ${Math.round(stalled / 1000)} s ` +
            '(a hung disk?): calls to it are refused until it answers again',
          { ...ref, drive: d.path },
        )
      }
      if (refusing.delete(h)) onChange(d, undefined)
      const op = h.begin()
      // A request body: while the handler awaits the next piece, it waits on the network.
      const body = def.requestBody
        ? {
            [Symbol.asyncIterator]: () => {
              const it = ctx.body[Symbol.asyncIterator]()
              return {
                next: async () => {
                  op.pause()
                  try {
                    return await it.next()
                  } finally {
                    op.resume()
                  }
                },
                return: async () => (await it.return?.()) ?? { value: undefined, done: true },
              }
            },
          }
        : ctx.body
      try {
        const out = await fn(req, def.requestBody ? { ...ctx, body } : ctx)
        if (!def.responseBody) return out
        // A response body: each piece asked for waits on the drive until it comes.
        const w = out as WithBody<Res>
        return withBody(w.res, tracked(w.body, h))
      } finally {
        op.end()
      }
    })
  }
}

function tracked(body: AsyncIterable<Uint8Array>, h: DriveHealth): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => {
      const it = body[Symbol.asyncIterator]()
      return {
        next: async () => {
          const op = h.begin()
          try {
            return await it.next()
          } finally {
            op.end()
          }
        },
        return: async () => (await it.return?.()) ?? { value: undefined, done: true },
      }
    },
  }
}
