// pnpm bench:rpc — the storage node's RPC path on loopback, side by side in one run with its
// baselines: raw TCP and Node's TLS 1.3 (ChaCha20-Poly1305), both received by a child process,
// against PutShard streams through PeerPool → secure channel → RPC → a real tessera-node
// process writing to a RAM-backed drive (tmpfs when we may mount one). Also: the round trip of
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
import { AbortWrite, CommitVersion, PutShard, type VersionRecord } from '@tessera/protocol'
import { machine, median, printTable, round, writeResults } from './measure.ts'
import { type BenchNode, startBenchNode } from './node-process.ts'
import { selfSignedCert } from './tls-cert.ts'

const smoke = process.argv.includes('--smoke')
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
// Baseline receiver, in a child process: counts bytes on a TCP and a TLS port.

/**
 * The V8 variant measured as well: without background GC threads, which on 2 cores compete
 * with the other process (see secure-channel.ts). Every process of that run uses it.
 */
const GC_VARIANT = '--single-threaded-gc'
const variantChild = process.argv.includes('--variant')

if (process.argv.includes('--receiver')) {
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
  const tcp = net.createServer((s) => s.on('data', count)).listen(0, '127.0.0.1')
  const tlsServer = tls
    .createServer({ key, cert: certPem, minVersion: 'TLSv1.3', ciphers: TLS_SUITE }, (s) =>
      s.on('data', count),
    )
    .listen(0, '127.0.0.1')
  await Promise.all([once(tcp, 'listening'), once(tlsServer, 'listening')])
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
  })
} else if (variantChild) {
  console.log(JSON.stringify(await streaming(GC_VARIANT)))
} else {
  await main()
}

async function baselines(): Promise<{
  stream(kind: 'tcp' | 'tls', bytes: number): Promise<number>
  close(): void
}> {
  const { key, certPem } = selfSignedCert()
  const child = fork(fileURLToPath(import.meta.url), ['--receiver'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      BENCH_CERT: JSON.stringify({ key: key.export({ type: 'pkcs8', format: 'pem' }), certPem }),
    },
  })
  const [ready] = (await once(child, 'message')) as [{ tcp: number; tls: number }]
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

/** Streams `bytes` to the RAM drive with PutShard, then drops the write; returns GB/s. */
async function putShardStream(node: BenchNode, bytes: number, streams: number): Promise<number> {
  const buf = randomBytes(CHUNK)
  const t0 = process.hrtime.bigint()
  const tmpIds = Array.from({ length: streams }, () => randomUUID())
  await Promise.all(
    tmpIds.map((tmpId) =>
      node.pool.call(
        node.peer,
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
  await Promise.all(tmpIds.map((tmpId) => node.pool.call(node.peer, AbortWrite, { ...ram, tmpId })))
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

async function main(): Promise<void> {
  const env = await environment([])
  const { node } = env
  const rows: Record<string, unknown>[] = []
  try {
    rows.push(...(await streamRows(env, '')))
    // The same comparison with every process (sender, TLS receiver, node) under GC_VARIANT.
    const child = spawnSync(
      process.execPath,
      [GC_VARIANT, fileURLToPath(import.meta.url), '--variant', ...(smoke ? ['--smoke'] : [])],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 20,
      },
    )
    const line = child.stdout.trim().split('\n').at(-1)
    if (child.status === 0 && line) rows.push(...(JSON.parse(line) as Record<string, unknown>[]))
    else console.error(`  the ${GC_VARIANT} run failed (status ${child.status})`)

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
    await putShardStream(node, MEM_STREAMS * MEM_STREAM_BYTES, MEM_STREAMS)
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

/** A node with a RAM drive and a disk drive, and the TCP/TLS baseline receiver. */
async function environment(execArgv: string[]): Promise<Env> {
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
    execArgv,
  })
  const base2 = await baselines()
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

/** Streaming through TCP, TLS and the RPC, interleaved per run; rows tagged with `suffix`. */
async function streamRows(env: Env, suffix: string): Promise<Record<string, unknown>[]> {
  const { node, base2 } = env
  const res: Record<string, number[]> = { tcp: [], tls: [], rpc: [], rpc4: [] }
  await base2.stream('tcp', STREAM_BYTES / 4)
  await base2.stream('tls', STREAM_BYTES / 4)
  await putShardStream(node, STREAM_BYTES / 4, 1)
  for (let r = 0; r < RUNS; r++) {
    res.tcp!.push(await base2.stream('tcp', STREAM_BYTES))
    res.tls!.push(await base2.stream('tls', STREAM_BYTES))
    res.rpc!.push(await putShardStream(node, STREAM_BYTES, 1))
    res.rpc4!.push(await putShardStream(node, STREAM_BYTES, 4))
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
    row('stream-rpc-putshard', median(res.rpc!)),
    row('stream-rpc-putshard-4-streams', median(res.rpc4!)),
  ]
}

/** The child run under GC_VARIANT: streaming rows only. */
async function streaming(flag: string): Promise<Record<string, unknown>[]> {
  const env = await environment([flag])
  try {
    return await streamRows(env, `-${flag.replace(/^--/, '')}`)
  } finally {
    await env.close()
  }
}
