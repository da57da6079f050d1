// pnpm bench:rpc — the storage node's RPC path on loopback, side by side in one run with its
// baselines: raw TCP and Node's TLS 1.3 (ChaCha20-Poly1305), both received by a child process
// that counts bytes; the RPC layer itself (PeerPool → secure channel → RPC) into the same child,
// whose PutShard handler counts the body and drops it (the like-for-like case: nothing is
// stored on either side); and PutShard streams into a real tessera-node process writing to a
// RAM-backed drive (tmpfs when we may mount one), which adds the node's file writes. Every
// process runs with the daemons' shipped V8 flags (DAEMON_V8_FLAGS); the same streaming
// comparison runs again with V8's defaults everywhere, for reference. Also: the round trip of
// a small durable record write (a real disk: fsync included), durable commits per second at 1
// and 64 concurrent writers, and the node's peak memory under 64 concurrent 64 MiB streams.
// Prints a table and writes results/rpc.json; `--smoke` is tiny and writes nothing.
import { execFileSync, fork, spawnSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import {
  AbortWrite,
  CommitVersion,
  DAEMON_V8_FLAGS,
  generateIdentity,
  listenSecure,
  mapHash,
  type Peer,
  type PeerPool,
  PROTOCOL_VERSION,
  PutShard,
  RpcServer,
  type VersionRecord,
} from '@tessera/protocol'
import { Option } from 'commander'
import { parseBench, smokeCommand } from './cli.ts'
import { machine, median, printTable, round, writeResults } from './measure.ts'
import { type BenchNode, startBenchNode } from './node-process.ts'
import { selfSignedCert } from './tls-cert.ts'

const opts = parseBench<{ smoke?: boolean; receiver?: boolean; variant?: string }>(
  smokeCommand(
    'bench:rpc',
    "The storage node's RPC path on loopback beside raw TCP and TLS 1.3, PutShard into a real node, durable commits, and the node's memory; writes results/rpc.json.",
  )
    .addOption(new Option('--receiver').hideHelp())
    .addOption(new Option('--variant <v>').hideHelp()),
)
const smoke = opts.smoke === true
const MiB = 1024 * 1024
const STREAM_BYTES = smoke ? 32 * MiB : 1024 * MiB
const RUNS = smoke ? 1 : 5
const CHUNK = MiB
const TLS_SUITE = 'TLS_CHACHA20_POLY1305_SHA256'
const RECORDS = smoke ? 50 : 500
const MEM_STREAMS = 64
const MEM_STREAM_BYTES = smoke ? MiB : 64 * MiB
/** The node's two drives: slot 0 on tmpfs (streams), slot 1 on disk (durable records). */
const ram = { pool: 0, set: 0, slot: 0 }
const disk = { pool: 0, set: 0, slot: 1 }

// ---------------------------------------------------------------------------------------------
// Baseline receiver, in a child process: counts bytes on a TCP and a TLS port, and serves
// PutShard on a secure-channel port by counting the body and dropping it (the RPC sink).

/** `--variant shipped|default`: a child that runs the streaming comparison only. */
const variant = opts.variant

if (opts.receiver) {
  const { key, certPem } = JSON.parse(process.env.BENCH_CERT!) as { key: string; certPem: string }
  let received = 0
  let want = Number.POSITIVE_INFINITY
  const count = (c: Buffer): void => {
    received += c.length
    if (received >= want) {
      want = Number.POSITIVE_INFINITY
      process.send!({ op: 'done' })
    }
  }
  const sink = new RpcServer()
  sink.handle(PutShard, async (_req, ctx) => {
    let bytes = 0
    for await (const chunk of ctx.body) bytes += chunk.length
    return { bytes }
  })
  const sinkIdentity = await generateIdentity()
  const rpcServer = listenSecure({
    identity: sinkIdentity,
    hello: { version: PROTOCOL_VERSION, mapHash: process.env.BENCH_MAP_HASH!, role: 'node' },
    authorize: () => undefined,
    onChannel: (ch) => sink.attach(ch),
  })
  rpcServer.listen(0, '127.0.0.1')
  const tcp = net.createServer((s) => s.on('data', count)).listen(0, '127.0.0.1')
  const tlsServer = tls
    .createServer({ key, cert: certPem, minVersion: 'TLSv1.3', ciphers: TLS_SUITE }, (s) =>
      s.on('data', count),
    )
    .listen(0, '127.0.0.1')
  await Promise.all([
    once(tcp, 'listening'),
    once(tlsServer, 'listening'),
    once(rpcServer, 'listening'),
  ])
  process.on('message', (m: { op: string; bytes?: number }) => {
    if (m.op === 'expect') {
      received = 0
      want = m.bytes!
    } else process.exit(0)
  })
  process.send!({
    op: 'ready',
    tcp: (tcp.address() as net.AddressInfo).port,
    tls: (tlsServer.address() as net.AddressInfo).port,
    sink: {
      id: sinkIdentity.id,
      address: `127.0.0.1:${(rpcServer.address() as net.AddressInfo).port}`,
    },
  })
} else if (variant !== undefined) {
  console.log(JSON.stringify(await streaming(variant === 'shipped' ? DAEMON_V8_FLAGS : [])))
} else {
  await main()
}

async function baselines(hash: string): Promise<{
  stream(kind: 'tcp' | 'tls', bytes: number): Promise<number>
  /** The receiver's RPC sink: PutShard bodies counted and dropped. */
  sink: Peer
  close(): void
}> {
  const { key, certPem } = selfSignedCert()
  const child = fork(fileURLToPath(import.meta.url), ['--receiver'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      BENCH_CERT: JSON.stringify({ key: key.export({ type: 'pkcs8', format: 'pem' }), certPem }),
      BENCH_MAP_HASH: hash,
    },
  })
  const [ready] = (await once(child, 'message')) as [{ tcp: number; tls: number; sink: Peer }]
  const tcp = net.connect(ready.tcp, '127.0.0.1')
  const sec = tls.connect({
    host: '127.0.0.1',
    port: ready.tls,
    ca: certPem,
    checkServerIdentity: () => undefined,
    minVersion: 'TLSv1.3',
    ciphers: TLS_SUITE,
  })
  await Promise.all([once(tcp, 'connect'), once(sec, 'secureConnect')])
  if (sec.getCipher().standardName !== TLS_SUITE)
    throw new Error(`TLS negotiated ${sec.getCipher().standardName}`)
  const buf = randomBytes(CHUNK)
  return {
    sink: ready.sink,
    async stream(kind, bytes) {
      const s = kind === 'tcp' ? tcp : sec
      const done = once(child, 'message')
      child.send({ op: 'expect', bytes })
      const t0 = process.hrtime.bigint()
      for (let sent = 0; sent < bytes; sent += CHUNK) if (!s.write(buf)) await once(s, 'drain')
      await done
      return bytes / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e9
    },
    close() {
      tcp.destroy()
      sec.destroy()
      child.send({ op: 'exit' })
    },
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Streams `bytes` with PutShard in `streams` concurrent calls to `peer` (the node's RAM drive,
 * or the receiver's sink); returns GB/s. Writes to a node are dropped afterwards.
 */
async function putShardStream(
  pool: PeerPool,
  peer: Peer,
  bytes: number,
  streams: number,
  node: boolean,
): Promise<number> {
  const buf = randomBytes(CHUNK)
  const t0 = process.hrtime.bigint()
  const tmpIds = Array.from({ length: streams }, () => randomUUID())
  await Promise.all(
    tmpIds.map((tmpId) =>
      pool.call(
        peer,
        PutShard,
        {
          ...ram,
          bucket: 'bench',
          key: 'k',
          dataDir: randomUUID(),
          part: 1,
          tmpId,
          size: bytes / streams,
        },
        {
          timeoutMs: 600_000,
          body: (async function* () {
            for (let sent = 0; sent < bytes / streams; sent += CHUNK) yield buf
          })(),
        },
      ),
    ),
  )
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  if (node) await Promise.all(tmpIds.map((tmpId) => pool.call(peer, AbortWrite, { ...ram, tmpId })))
  return bytes / s / 1e9
}

function record(key: string): VersionRecord {
  return {
    bucket: 'bench',
    key,
    versionId: 'null',
    modTime: Date.now() * 4096,
    size: 1000,
    etag: 'x',
    erasure: { k: 1, m: 1, blockSize: MiB, distribution: [0, 1], index: 1 },
    parts: [{ number: 1, size: 1000, etag: 'x' }],
    deleteMarker: false,
    inline: randomBytes(1008),
  }
}

/** Runs the streaming comparison in a child process with `flags`; its rows, tagged. */
function streamingChild(name: 'shipped' | 'default', flags: readonly string[]) {
  const child = spawnSync(
    process.execPath,
    [...flags, fileURLToPath(import.meta.url), '--variant', name, ...(smoke ? ['--smoke'] : [])],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 },
  )
  const line = child.stdout.trim().split('\n').at(-1)
  if (child.status === 0 && line) return JSON.parse(line) as Record<string, unknown>[]
  throw new Error(`the ${name} streaming run failed (status ${child.status})`)
}

async function main(): Promise<void> {
  // Streaming, in a child per V8 setting (sender, receiver and node alike): as shipped first.
  const shipped = streamingChild('shipped', DAEMON_V8_FLAGS)
  const defaults = streamingChild('default', [])
  // The stricter bar as well: each RPC row against the faster of the two TLS medians.
  const tlsOf = (rs: Record<string, unknown>[]) =>
    Number(rs.find((r) => String(r.case).startsWith('stream-tls13'))?.gbps ?? 0)
  const bestTls = Math.max(tlsOf(shipped), tlsOf(defaults))
  const rows: Record<string, unknown>[] = [...shipped, ...defaults].map((r) =>
    String(r.case).startsWith('stream-rpc')
      ? { ...r, vsBestTls: round(Number(r.gbps) / bestTls) }
      : r,
  )
  const env = await environment(DAEMON_V8_FLAGS)
  const { node } = env
  try {
    // A small durable record write: one CommitVersion (inline, 1 KiB) on the disk drive.
    const lat: number[] = []
    for (let i = 0; i < RECORDS; i++) {
      const t0 = process.hrtime.bigint()
      await node.pool.call(node.peer, CommitVersion, { ...disk, record: record(`r${i % 50}`) })
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
    lat.sort((a, b) => a - b)
    rows.push({
      case: 'record-write-roundtrip',
      medianMs: round(median(lat)),
      p99Ms: round(lat[Math.floor(lat.length * 0.99)]!),
      targetMs: 2,
    })

    // Durable commits per second through the RPC, 1 and 64 concurrent writers.
    for (const writers of [1, 64]) {
      const per = smoke ? 10 : 200
      const t0 = process.hrtime.bigint()
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let i = 0; i < per; i++) {
            await node.pool.call(node.peer, CommitVersion, {
              ...disk,
              record: record(`w${w}-${i % 20}`),
            })
          }
        }),
      )
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      rows.push({
        case: `rpc-commits-${writers}-writers`,
        commitsPerSec: Math.round((writers * per) / s),
      })
    }

    // Peak memory of the node with 64 concurrent 64 MiB streams.
    const mem0 = await node.peakRssBytes()
    await putShardStream(node.pool, node.peer, MEM_STREAMS * MEM_STREAM_BYTES, MEM_STREAMS, true)
    const peak = await node.peakRssBytes()
    rows.push({
      case: `node-peak-rss-${MEM_STREAMS}x${MEM_STREAM_BYTES / MiB}MiB`,
      peakMiB: Math.round(peak / MiB),
      beforeMiB: Math.round(mem0 / MiB),
      targetMiB: 512,
    })
  } finally {
    await env.close()
  }
  printTable(rows, [
    'case',
    'gbps',
    'vsTls',
    'vsBestTls',
    'vsTcp',
    'medianMs',
    'p99Ms',
    'commitsPerSec',
    'peakMiB',
    'targetMiB',
  ])
  const result = { bench: 'rpc', smoke, ram: env.ramNote, machine: machine(), rows }
  if (!smoke) {
    writeResults('rpc', rows, result)
  }
  console.log(JSON.stringify(result))
}

interface Env {
  node: BenchNode
  base2: Awaited<ReturnType<typeof baselines>>
  ramNote: string
  close(): Promise<void>
}

/** A node with a RAM drive and a disk drive, and the TCP/TLS/RPC-sink receiver. */
async function environment(execArgv: readonly string[]): Promise<Env> {
  // A RAM-backed drive, so the stream measures the RPC path and not this VM's disk.
  const base = mkdtempSync(join(tmpdir(), 'tessera-rpc-bench-'))
  const ramDir = join(base, 'ram')
  mkdirSync(ramDir)
  let ramNote = 'tmpfs'
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${smoke ? '512m' : '6g'}`, 'tmpfs', ramDir], {
      stdio: 'ignore',
    })
  } catch {
    ramNote = `no tmpfs (mount not permitted): ${tmpdir()} on disk`
  }
  const node = await startBenchNode({
    drives: [ramDir, join(base, 'disk')],
    k: 1,
    m: 1,
    connectionsPerPeer: 4,
    execArgv: [...execArgv],
  })
  const base2 = await baselines(mapHash(node.map))
  return {
    node,
    base2,
    ramNote,
    async close() {
      base2.close()
      await node.close()
      if (ramNote === 'tmpfs') execFileSync('umount', ['-l', ramDir], { stdio: 'ignore' })
      rmSync(base, { recursive: true, force: true })
    },
  }
}

/**
 * Streaming through TCP, TLS, the RPC sink and PutShard into the node, interleaved per run;
 * rows tagged with `suffix`.
 */
async function streamRows(env: Env, suffix: string): Promise<Record<string, unknown>[]> {
  const { node, base2 } = env
  const res: Record<string, number[]> = { tcp: [], tls: [], sink: [], rpc: [], rpc4: [] }
  const sink = (bytes: number) => putShardStream(node.pool, base2.sink, bytes, 1, false)
  const put = (bytes: number, streams: number) =>
    putShardStream(node.pool, node.peer, bytes, streams, true)
  await base2.stream('tcp', STREAM_BYTES / 4)
  await base2.stream('tls', STREAM_BYTES / 4)
  await sink(STREAM_BYTES / 4)
  await put(STREAM_BYTES / 4, 1)
  for (let r = 0; r < RUNS; r++) {
    res.tcp!.push(await base2.stream('tcp', STREAM_BYTES))
    res.tls!.push(await base2.stream('tls', STREAM_BYTES))
    res.sink!.push(await sink(STREAM_BYTES))
    res.rpc!.push(await put(STREAM_BYTES, 1))
    res.rpc4!.push(await put(STREAM_BYTES, 4))
    const now = Object.entries(res).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(2)}`)
    console.error(`  run ${r + 1}/${RUNS}${suffix}: ${now.join(', ')} GB/s`)
  }
  const tcp = median(res.tcp!)
  const tlsG = median(res.tls!)
  const row = (c: string, g: number) => ({
    case: `${c}${suffix}`,
    gbps: round(g),
    vsTls: round(g / tlsG),
    vsTcp: round(g / tcp),
  })
  return [
    row('stream-tcp', tcp),
    row('stream-tls13-chacha20', tlsG),
    row('stream-rpc-sink', median(res.sink!)),
    row('stream-rpc-putshard', median(res.rpc!)),
    row('stream-rpc-putshard-4-streams', median(res.rpc4!)),
  ]
}

/** A child's streaming comparison: every process with `flags` (sender, receiver, node). */
async function streaming(flags: readonly string[]): Promise<Record<string, unknown>[]> {
  const env = await environment(flags)
  try {
    return await streamRows(env, flags.length > 0 ? '' : '-default-v8')
  } finally {
    await env.close()
  }
}
