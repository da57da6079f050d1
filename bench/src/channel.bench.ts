// node bench/dist/channel.bench.js [--smoke] — one-way streaming throughput on loopback of
// raw TCP, Node's TLS 1.3 (TLS_CHACHA20_POLY1305_SHA256) and @tessera/protocol's secure
// channel at three frame sizes, side by side in one run: each timed run streams every case in
// turn over connections opened once. Measured with the receiver in this process (one event
// loop does both sides) and in a forked child process (one process per side, the real
// deployment); then all of it again in a second node process started with
// --single-threaded-gc (V8 without background GC threads, in sender and receiver alike),
// because on a 2-core machine those threads decide the result: see the design notes of
// secure-channel.ts. Prints a table and writes results/channel.json; `--smoke` streams
// 64 MiB once per case and writes nothing.

import { type ChildProcess, fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import {
  connectSecure,
  generateIdentity,
  type Identity,
  listenSecure,
  PROTOCOL_VERSION,
  type SecureChannel,
} from '@tessera/protocol'
import { Option } from 'commander'
import { parseBench, smokeCommand } from './cli.ts'
import { machine, median, printTable, writeResults } from './measure.ts'
import { selfSignedCert } from './tls-cert.ts'

const opts = parseBench<{ smoke?: boolean; receiver?: boolean; variant?: boolean }>(
  smokeCommand(
    'bench:channel',
    'One-way streaming over loopback: raw TCP, TLS 1.3 and the secure channel, in one process and across two; writes results/channel.json.',
  )
    .addOption(new Option('--receiver').hideHelp())
    .addOption(new Option('--variant').hideHelp()),
)
const smoke = opts.smoke === true
const MiB = 1024 * 1024
const STREAM_BYTES = smoke ? 64 * MiB : 1024 * MiB
const WARMUP_BYTES = smoke ? 16 * MiB : 128 * MiB
const RUNS = smoke ? 1 : 5
/** Application write size for TCP and TLS (TLS cuts it into 16 KiB records itself). */
const WRITE_BYTES = MiB
const TLS_SUITE = 'TLS_CHACHA20_POLY1305_SHA256'
const MAP_HASH = 'bench'
/** The V8 setting of the second pass; only valid on the command line (not NODE_OPTIONS). */
const V8_VARIANT = '--single-threaded-gc'
const v8Setting = process.execArgv.includes(V8_VARIANT) ? V8_VARIANT : 'default'

type CaseName = 'tcp' | 'tls' | 'channel-256KiB' | 'channel-1MiB' | 'channel-4MiB'
/** tcp: raw net sockets; tls: Node TLS 1.3 with TLS_SUITE; channel-*: ours, by frame size. */
const CASES: { name: CaseName; frameBytes?: number }[] = [
  { name: 'tcp' },
  { name: 'tls' },
  { name: 'channel-256KiB', frameBytes: 256 * 1024 },
  { name: 'channel-1MiB', frameBytes: MiB },
  { name: 'channel-4MiB', frameBytes: 4 * MiB },
]

// ---------------------------------------------------------------------------------------------
// Receiver: listens for every case and reports when a given byte count has arrived.

class Receiver {
  readonly #received = new Map<CaseName, number>()
  readonly #waiting = new Map<CaseName, { target: number; resolve: () => void }>()
  readonly #servers: net.Server[] = []
  readonly #channels: SecureChannel[] = []
  // The receiver's own identity: made where it runs, since keys do not cross process lines.
  readonly #identity = generateIdentity()

  #count(name: CaseName, bytes: number): void {
    const total = (this.#received.get(name) ?? 0) + bytes
    this.#received.set(name, total)
    const w = this.#waiting.get(name)
    if (w !== undefined && total >= w.target) {
      this.#waiting.delete(name)
      w.resolve()
    }
  }

  /**
   * Resolves once `name` has received `target` bytes in all since it started, with the CPU
   * time this process used meanwhile, in microseconds.
   */
  async expect(name: CaseName, target: number): Promise<number> {
    const c0 = process.cpuUsage()
    if ((this.#received.get(name) ?? 0) < target) {
      await new Promise<void>((resolve) => this.#waiting.set(name, { target, resolve }))
    }
    const c = process.cpuUsage(c0)
    return c.user + c.system
  }

  async listen(name: CaseName, setup: ListenSetup): Promise<{ port: number; id: string }> {
    const identity = await this.#identity
    let server: net.Server
    if (name === 'tcp') {
      server = net.createServer((s) => {
        s.setNoDelay(true)
        s.on('data', (c: Buffer) => this.#count(name, c.length))
      })
    } else if (name === 'tls') {
      server = tls.createServer(
        {
          key: setup.keyPem,
          cert: setup.certPem,
          minVersion: 'TLSv1.3',
          ciphers: TLS_SUITE,
        },
        (s) => {
          s.setNoDelay(true)
          s.on('data', (c: Buffer) => this.#count(name, c.length))
        },
      )
    } else {
      server = listenSecure({
        identity,
        hello: { version: PROTOCOL_VERSION, mapHash: MAP_HASH, role: 'node' },
        authorize: (id) => (id === setup.dialerId ? undefined : 'unknown'),
        onChannel: (ch) => {
          this.#channels.push(ch)
          ch.on('frame', (f) => this.#count(name, f.length))
        },
      })
    }
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    this.#servers.push(server)
    return { port: (server.address() as net.AddressInfo).port, id: identity.id }
  }

  close(): void {
    for (const ch of this.#channels) ch.close()
    for (const s of this.#servers) s.close()
  }
}

interface ListenSetup {
  certPem: string
  keyPem: string
  /** The sender's identity id, the only one the channel listener lets in. */
  dialerId: string
}

type ToChild =
  | { op: 'listen'; name: CaseName; setup: ListenSetup }
  | { op: 'expect'; name: CaseName; target: number; seq: number }
  | { op: 'exit' }
type FromChild =
  | { op: 'listening'; name: CaseName; port: number; id: string }
  | { op: 'done'; seq: number; cpuMicros: number }

/** The receiver, here or in a child process. */
interface ReceiverHandle {
  listen(name: CaseName, setup: ListenSetup): Promise<{ port: number; id: string }>
  /** Resolves when `target` bytes arrived, with the receiver's CPU time if it runs apart. */
  expect(name: CaseName, target: number): Promise<number>
  close(): void
}

function localReceiver(): ReceiverHandle {
  const r = new Receiver()
  return {
    listen: (n, s) => r.listen(n, s),
    // Same process: the sender's CPU measurement already includes the receiver.
    expect: (n, t) => r.expect(n, t).then(() => 0),
    close: () => r.close(),
  }
}

function childReceiver(): ReceiverHandle {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--receiver'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const pending = new Map<string, (m: FromChild) => void>()
  child.on('message', (m: FromChild) => {
    const key = m.op === 'listening' ? `l:${m.name}` : `d:${m.seq}`
    pending.get(key)?.(m)
    pending.delete(key)
  })
  let seq = 0
  const ask = (key: string, msg: ToChild): Promise<FromChild> =>
    new Promise((resolve) => {
      pending.set(key, resolve)
      child.send(msg)
    })
  return {
    listen: async (name, setup) => {
      const m = await ask(`l:${name}`, { op: 'listen', name, setup })
      return m as { port: number; id: string }
    },
    expect: async (name, target) => {
      const s = seq++
      const m = await ask(`d:${s}`, { op: 'expect', name, target, seq: s })
      return (m as { cpuMicros: number }).cpuMicros
    },
    close: () => child.send({ op: 'exit' } satisfies ToChild),
  }
}

// ---------------------------------------------------------------------------------------------
// Sender

/** Writes `bytes` with write() and the stream's backpressure; resolves when all are queued. */
async function pump(
  write: () => boolean,
  waitDrain: () => Promise<unknown>,
  chunkBytes: number,
  bytes: number,
): Promise<void> {
  for (let sent = 0; sent < bytes; sent += chunkBytes) {
    if (!write()) await waitDrain()
  }
}

interface Sender {
  name: CaseName
  stream(bytes: number): Promise<void>
  close(): void
  handshakeMs: number
}

async function openSender(
  name: CaseName,
  port: number,
  setup: { certPem: string; identity: Identity; remoteId: string },
  frameBytes: number | undefined,
): Promise<Sender> {
  const t0 = performance.now()
  if (name === 'tcp' || name === 'tls') {
    const socket =
      name === 'tcp'
        ? net.connect(port, '127.0.0.1')
        : tls.connect({
            host: '127.0.0.1',
            port,
            ca: setup.certPem,
            checkServerIdentity: () => undefined,
            minVersion: 'TLSv1.3',
            ciphers: TLS_SUITE,
          })
    await once(socket, name === 'tcp' ? 'connect' : 'secureConnect')
    const handshakeMs = performance.now() - t0
    socket.setNoDelay(true)
    if (socket instanceof tls.TLSSocket) {
      const c = socket.getCipher()
      if (c.standardName !== TLS_SUITE || socket.getProtocol() !== 'TLSv1.3') {
        throw new Error(`TLS negotiated ${socket.getProtocol()} ${c.standardName}`)
      }
    }
    const buf = randomBytes(WRITE_BYTES)
    return {
      name,
      handshakeMs,
      stream: (bytes) =>
        pump(
          () => socket.write(buf),
          () => once(socket, 'drain'),
          WRITE_BYTES,
          bytes,
        ),
      close: () => socket.destroy(),
    }
  }
  const ch = await connectSecure({
    host: '127.0.0.1',
    port,
    identity: setup.identity,
    expectedRemoteId: setup.remoteId,
    hello: { version: PROTOCOL_VERSION, mapHash: MAP_HASH, role: 'gateway' },
  })
  const handshakeMs = performance.now() - t0
  const body = randomBytes(frameBytes!)
  const parts = [body]
  return {
    name,
    handshakeMs,
    stream: (bytes) =>
      pump(
        () => ch.send(parts),
        () => once(ch, 'drain'),
        body.length,
        bytes,
      ),
    close: () => ch.close(),
  }
}

interface Row {
  case: CaseName
  receiver: 'same process' | 'child process'
  /** V8 flags of sender and receiver: 'default' or V8_VARIANT. */
  v8: string
  gbps: number
  vsTls: number
  vsTcp: number
  /** CPU time of sender + receiver per byte streamed: comparable even on a busy machine. */
  cpuNsPerByte: number
  handshakeMs: number
}

const round = (v: number, d = 3): number => Math.round(v * 10 ** d) / 10 ** d

async function measure(layout: Row['receiver']): Promise<Row[]> {
  const receiver = layout === 'same process' ? localReceiver() : childReceiver()
  const { key, certPem } = selfSignedCert()
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string
  const dialerIdentity = await generateIdentity()
  const senders: Sender[] = []
  const sent = new Map<CaseName, number>()
  for (const c of CASES) {
    const { port, id } = await receiver.listen(c.name, {
      certPem,
      keyPem,
      dialerId: dialerIdentity.id,
    })
    const s = await openSender(
      c.name,
      port,
      { certPem, identity: dialerIdentity, remoteId: id },
      c.frameBytes,
    )
    senders.push(s)
  }
  const run = async (s: Sender, bytes: number): Promise<{ gbps: number; cpuNs: number }> => {
    const target = (sent.get(s.name) ?? 0) + bytes
    sent.set(s.name, target)
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    const done = receiver.expect(s.name, target)
    await s.stream(bytes)
    const receiverCpu = await done
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    const c = process.cpuUsage(c0)
    return { gbps: bytes / seconds / 1e9, cpuNs: ((c.user + c.system + receiverCpu) * 1e3) / bytes }
  }
  for (const s of senders) await run(s, WARMUP_BYTES)
  const results = new Map<CaseName, { gbps: number[]; cpuNs: number[] }>()
  for (let r = 0; r < RUNS; r++) {
    // Interleaved: every case sees the same machine noise.
    for (const s of senders) {
      const m = await run(s, STREAM_BYTES)
      const acc = results.get(s.name) ?? { gbps: [], cpuNs: [] }
      acc.gbps.push(m.gbps)
      acc.cpuNs.push(m.cpuNs)
      results.set(s.name, acc)
      console.error(
        `  [${layout}, v8 ${v8Setting}] run ${r + 1}/${RUNS} ${s.name}: ${m.gbps.toFixed(3)} GB/s, ` +
          `${m.cpuNs.toFixed(3)} CPU ns/byte`,
      )
    }
  }
  for (const s of senders) s.close()
  receiver.close()
  const g = (n: CaseName): number => median(results.get(n)!.gbps)
  return senders.map((s) => ({
    case: s.name,
    receiver: layout,
    v8: v8Setting,
    gbps: round(g(s.name)),
    vsTls: round(g(s.name) / g('tls')),
    vsTcp: round(g(s.name) / g('tcp')),
    cpuNsPerByte: round(median(results.get(s.name)!.cpuNs)),
    handshakeMs: round(s.handshakeMs, 1),
  }))
}

/** Runs this bench again in a node started with V8_VARIANT and returns its rows. */
async function variantRows(): Promise<Row[]> {
  const args = [V8_VARIANT, fileURLToPath(import.meta.url), '--variant']
  if (smoke) args.push('--smoke')
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString()
  })
  const [code] = await once(child, 'exit')
  if (code !== 0) throw new Error(`the ${V8_VARIANT} pass exited with ${code}`)
  return out
    .split('\n')
    .filter((l) => l.startsWith('ROW '))
    .map((l) => JSON.parse(l.slice(4)) as Row)
}

async function main(): Promise<void> {
  const rows = [...(await measure('same process')), ...(await measure('child process'))]
  if (opts.variant) {
    for (const r of rows) console.log(`ROW ${JSON.stringify(r)}`)
    return
  }
  rows.push(...(await variantRows()))
  console.log(
    `streaming ${STREAM_BYTES / MiB} MiB one way on 127.0.0.1, median of ${RUNS} run(s)` +
      (smoke ? ' (smoke)' : ''),
  )
  printTable(rows as unknown as Record<string, unknown>[], [
    'case',
    'receiver',
    'v8',
    'gbps',
    'vsTls',
    'vsTcp',
    'cpuNsPerByte',
    'handshakeMs',
  ])
  for (const r of rows) console.log(JSON.stringify(r))
  if (!smoke) {
    const run = {
      bench: 'channel',
      streamBytes: STREAM_BYTES,
      runs: RUNS,
      sender: 'this process (dialer)',
      machine: machine(),
      rows,
    }
    writeResults('channel', rows, run)
  }
}

// Entry point last: main() uses every declaration above.
if (opts.receiver) {
  const r = new Receiver()
  process.on('message', (m: ToChild) => {
    if (m.op === 'listen') {
      void r.listen(m.name, m.setup).then(({ port, id }) => {
        process.send?.({ op: 'listening', name: m.name, port, id } satisfies FromChild)
      })
    } else if (m.op === 'expect') {
      void r.expect(m.name, m.target).then((cpuMicros) => {
        process.send?.({ op: 'done', seq: m.seq, cpuMicros } satisfies FromChild)
      })
    } else {
      r.close()
      process.disconnect()
    }
  })
} else {
  await main()
}
