// `tessera map`: ellipsis ranges, pairing of pool options, node ids, keys files, generate,
// add-pool and validate, as functions and as the real CLI process (exit status and messages).
import { execFile } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  computeLayout,
  generateIdentity,
  mapHash,
  parseClusterMap,
  stringifyClusterMap,
} from '@tessera/protocol'
import t, { type Test } from 'tap'
import {
  addPools,
  expandPattern,
  generateMap,
  keyLookup,
  MapCliError,
  nodeIds,
  parseKeysFile,
  poolPatterns,
  summarizeMap,
} from '../src/map-cli.ts'

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url))

/** Runs `tessera …`; resolves with its exit status and output, whatever the status. */
function tessera(
  args: string[],
  cwd?: string,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd }, (error, out, err) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out, err })
    })
  })
}

/** A keys file for `hosts`, with real identities. */
async function keysFor(hosts: string[]): Promise<{ text: string; keys: Map<string, string> }> {
  const keys = new Map<string, string>()
  for (const host of hosts) keys.set(host, (await generateIdentity()).id)
  const text = [...keys].map(([host, key]) => `${host} ${key}`).join('\n')
  return { text: `# host  public key\n${text}\n`, keys }
}

const hosts = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `node${from + i}.example.net`)

t.test('expandPattern: ranges, zero-padding, products', async (t) => {
  t.same(expandPattern('node{1...4}.example.net:7373'), [
    'node1.example.net:7373',
    'node2.example.net:7373',
    'node3.example.net:7373',
    'node4.example.net:7373',
  ])
  t.same(expandPattern('/mnt/disk{01...03}'), ['/mnt/disk01', '/mnt/disk02', '/mnt/disk03'])
  t.same(expandPattern('/mnt/disk{08...11}'), [
    '/mnt/disk08',
    '/mnt/disk09',
    '/mnt/disk10',
    '/mnt/disk11',
  ])
  t.same(expandPattern('/d{9...11}'), ['/d9', '/d10', '/d11'], 'no leading zero: no padding')
  t.same(
    expandPattern('rack{1...2}-n{1...2}'),
    ['rack1-n1', 'rack1-n2', 'rack2-n1', 'rack2-n2'],
    'several ranges: a product, the leftmost varying slowest',
  )
  t.same(expandPattern('10.0.0.1:7373'), ['10.0.0.1:7373'], 'no range: itself')
  t.same(expandPattern('/mnt/d{3...3}'), ['/mnt/d3'])
  t.equal(expandPattern('/d{1...4096}').length, 4096)
})

t.test('expandPattern: malformed patterns say what to write', async (t) => {
  const fails = (pattern: string, message: RegExp) =>
    t.throws(() => expandPattern(pattern), { name: 'MapCliError', message }, pattern)
  fails('node{1..4}', /three dots, as in \{1...4\}/)
  fails('node{a...d}', /not a range: write a range of numbers/)
  fails('node{4...1}', /counts down; write it from low to high, as \{1...4\}/)
  fails('node{1...4', /unmatched or nested brace/)
  fails('node1...4}', /unmatched or nested brace/)
  fails('n{{1...2}}', /unmatched or nested brace/)
  fails('/d{1...5000}', /more than 4096 names/)
  fails('/n{1...100}/d{1...100}', /more than 4096 names/)
})

t.test('poolPatterns: pairs in command-line order, --pool split, missing partners', async (t) => {
  t.same(
    poolPatterns([
      { kind: 'nodes', value: 'a{1...4}' },
      { kind: 'drives', value: '/d{1...4}' },
      { kind: 'pool', value: 'b{1...4}:7373/mnt/x{1...2}' },
      { kind: 'drives', value: '/e{1...2}' },
      { kind: 'nodes', value: 'c{1...8}' },
    ]),
    [
      { nodes: 'a{1...4}', drives: '/d{1...4}' },
      { nodes: 'b{1...4}:7373', drives: '/mnt/x{1...2}' },
      { nodes: 'c{1...8}', drives: '/e{1...2}' },
    ],
  )
  t.throws(() => poolPatterns([{ kind: 'nodes', value: 'a' }]), /--nodes "a" has no --drives/)
  t.throws(() => poolPatterns([{ kind: 'drives', value: '/d' }]), /--drives "\/d" has no --nodes/)
  t.throws(() => poolPatterns([]), /give the pool's nodes and drives/)
  t.throws(() => poolPatterns([{ kind: 'pool', value: 'a{1...4}' }]), /nodes followed by drives/)
})

t.test(
  'nodeIds: first labels when unique, else whole hosts, else with ports; IPs whole',
  async (t) => {
    t.same(nodeIds(['node1.example.net', 'node2.example.net']), ['node1', 'node2'])
    t.same(nodeIds(['s1.rack1.example.net', 's1.rack2.example.net']), [
      's1.rack1.example.net',
      's1.rack2.example.net',
    ])
    t.same(nodeIds(['node5.example.net'], new Set(['node5'])), ['node5.example.net'])
    t.same(nodeIds(['10.0.0.1', '10.0.0.2']), ['10.0.0.1', '10.0.0.2'])
    t.same(nodeIds(['[fd00::1]:7373']), ['fd00--1'])
    t.same(
      nodeIds(['n1.lab:7373', 'n1.lab:7374']),
      ['n1.lab-7373', 'n1.lab-7374'],
      'one host twice',
    )
  },
)

t.test('parseKeysFile: comments and blank lines; bad lines and conflicts listed', async (t) => {
  const keys = parseKeysFile('# keys\n\nnode1 K1\n  node2:7373\tK2  # trailing\n', 'k.txt')
  t.same(
    [...keys],
    [
      ['node1', 'K1'],
      ['node2:7373', 'K2'],
    ],
  )
  const err = t.throws(() => parseKeysFile('node1 K1\nnode2\nnode1 K3\na b c\n', 'k.txt'))
  t.type(err, MapCliError)
  t.match((err as Error).message, /k\.txt:2: want "<host> <public key>", got "node2"/)
  t.match((err as Error).message, /k\.txt:3: node1 has another key on an earlier line/)
  t.match((err as Error).message, /k\.txt:4: want/)
})

t.test('generateMap: 4 servers × 4 drives, RS(4,4), keys by host', async (t) => {
  const dir = t.testdir()
  const { text, keys } = await keysFor(hosts(1, 4))
  await writeFile(join(dir, 'keys.txt'), text)
  const gateway = (await generateIdentity()).id
  const built = await generateMap({
    cluster: 'prod',
    data: 4,
    parity: 4,
    pools: [{ nodes: 'node{1...4}.example.net:7373', drives: '/mnt/disk{1...4}' }],
    gateways: [gateway],
    keys: await keyLookup({ keys: join(dir, 'keys.txt') }),
  })
  const { map } = built
  t.same(parseClusterMap(built.text), map, 'the text reads back to the map')
  t.equal(built.hash, mapHash(map))
  t.same(
    map.pools[0]!.nodes.map((n) => [n.id, n.address, n.publicKey]),
    hosts(1, 4).map((h, i) => [`node${i + 1}`, `${h}:7373`, keys.get(h)]),
  )
  t.same(map.pools[0]!.nodes[0]!.drives, ['/mnt/disk1', '/mnt/disk2', '/mnt/disk3', '/mnt/disk4'])
  t.same(map.erasure, { data: 4, parity: 4, blockSize: 1048576, inlineBelow: 131072 })
  t.same(map.gateways, [gateway])

  const s = summarizeMap(map)
  t.match(s, {
    cluster: 'prod',
    setSize: 8,
    usableFraction: 0.5,
    writeQuorum: 5,
    driveFailuresForReads: 4,
    driveFailuresForWrites: 3,
    nodes: 4,
    drives: 16,
    sets: 2,
    gateways: 1,
  })
  t.match(s.pools[0], {
    sets: 2,
    drivesPerNode: 4,
    nodesPerSet: 4,
    maxSetDrivesPerNode: 2,
    nodeFailuresForReads: 2,
    nodeFailuresForWrites: 1,
  })
})

t.test('generateMap: keys folder, default port, two pools, RS(2,1)', async (t) => {
  const dir = t.testdir({ keys: {} })
  // Keys under the host for pool 0 and under the node id for pool 1: both are looked up.
  for (const host of hosts(1, 3)) {
    await writeFile(join(dir, 'keys', `${host}.pub`), `${(await generateIdentity()).id}\n`)
  }
  for (const id of ['node4', 'node5', 'node6']) {
    await writeFile(join(dir, 'keys', `${id}.pub`), `# ${id}\n${(await generateIdentity()).id}\n`)
  }
  const built = await generateMap({
    cluster: 'two',
    data: 2,
    parity: 1,
    pools: [
      { nodes: 'node{1...3}.example.net', drives: '/mnt/disk{1...2}' },
      { nodes: 'node{4...6}.example.net:7400', drives: '/srv/d{01...02}' },
    ],
    gateways: [],
    keys: await keyLookup({ keysDir: join(dir, 'keys') }),
  })
  t.equal(built.map.pools.length, 2)
  t.equal(built.map.pools[0]!.nodes[0]!.address, 'node1.example.net:7373', 'default port 7373')
  t.same(built.map.pools[1]!.nodes[2]!.drives, ['/srv/d01', '/srv/d02'])
  const s = summarizeMap(built.map)
  t.same(
    s.pools.map((p) => [p.sets, p.nodeFailuresForReads, p.nodeFailuresForWrites]),
    [
      [2, 1, 1],
      [2, 1, 1],
    ],
  )
})

t.test('generateMap: every missing key and every invalid map problem at once', async (t) => {
  const keys = await keyLookup({ keys: await keysFile(t, hosts(1, 2)) })
  await t.rejects(
    generateMap({
      cluster: 'c',
      data: 2,
      parity: 2,
      pools: [{ nodes: 'node{1...4}.example.net', drives: '/d{1...2}' }],
      gateways: [],
      keys,
    }),
    { name: 'MapCliError', message: /no public key for node3\.example\.net, node4\.example\.net/ },
  )
  await t.rejects(
    generateMap({
      cluster: 'c',
      data: 4,
      parity: 4,
      pools: [{ nodes: 'node{1...2}.example.net', drives: '/d{1...2}' }],
      gateways: [],
      keys,
    }),
    { name: 'ClusterMapError', message: /pools\[0\]: k\+m = 4\+4 = 8 is larger than the pool's 4/ },
  )
  // A pool where one node holds more of a set than parity: named by node, not only by path.
  await t.rejects(
    generateMap({
      cluster: 'c',
      data: 2,
      parity: 1,
      pools: [{ nodes: 'node{1...2}.example.net', drives: '/d{1...3}' }],
      gateways: [],
      keys,
    }),
    { name: 'ClusterMapError', message: /losing node node1 loses data.*\[node node1, node1\.exa/ },
  )
  await t.rejects(
    generateMap({
      cluster: 'c',
      data: 2,
      parity: 2,
      pools: [{ nodes: 'node{1...2}.example.net', drives: 'mnt/d{1...2}' }],
      gateways: [],
      keys,
    }),
    { message: /drive folder "mnt\/d1" is not an absolute path/ },
  )
})

async function keysFile(t: Test, names: string[]): Promise<string> {
  const path = join(t.testdir(), 'keys.txt')
  await writeFile(path, (await keysFor(names)).text)
  return path
}

t.test('addPools: appends a pool; existing slots stay, the hash changes', async (t) => {
  const keys = await keyLookup({ keys: await keysFile(t, hosts(1, 8)) })
  const first = await generateMap({
    cluster: 'grow',
    data: 2,
    parity: 2,
    pools: [{ nodes: 'node{1...4}.example.net', drives: '/mnt/disk{1...2}' }],
    gateways: [],
    keys,
  })
  const gateway = (await generateIdentity()).id
  const grown = await addPools(first.map, {
    pools: [{ nodes: 'node{5...8}.example.net', drives: '/mnt/disk{1...4}' }],
    gateways: [gateway],
    keys,
  })
  t.equal(grown.map.pools.length, 2)
  t.same(grown.map.pools[0], first.map.pools[0], 'pool 0 untouched')
  t.same(
    grown.map.pools[1]!.nodes.map((n) => n.id),
    ['node5', 'node6', 'node7', 'node8'],
  )
  t.same(grown.map.gateways, [gateway])
  t.not(grown.hash, first.hash)
  t.same(computeLayout(grown.map).pools[0], computeLayout(first.map).pools[0], 'same layout')
  await t.rejects(
    addPools(first.map, {
      pools: [{ nodes: 'node{1...4}.example.net', drives: '/mnt/disk{1...2}' }],
      gateways: [],
      keys,
    }),
    { name: 'ClusterMapError', message: /duplicate address/ },
    'nodes already in the map are refused',
  )
})

t.test('tessera map generate and validate, as processes', async (t) => {
  const dir = t.testdir()
  const keys = await keysFile(t, hosts(1, 4))
  const gateway = (await generateIdentity()).id
  const args = [
    'map',
    'generate',
    '--nodes',
    'node{1...4}.example.net:7373',
    '--drives',
    '/mnt/disk{1...4}',
    '--data',
    '4',
    '--parity',
    '4',
    '--cluster',
    'prod',
    '--keys',
    keys,
    '--gateway',
    gateway,
  ]
  const out = join(dir, 'cluster.yaml')
  const gen = await tessera([...args, '--out', out])
  t.equal(gen.code, 0, gen.err)
  t.match(gen.out, `Wrote ${out}`)
  t.match(gen.out, /2 erasure sets/)
  t.match(gen.out, /Usable capacity: 50% of raw/)
  t.match(gen.out, /Each set survives 4 failed drives for reads and 3 for writes/)
  t.match(gen.out, /survives 2 failed nodes for reads, 1 for writes/)
  const map = parseClusterMap(await readFile(out, 'utf8'))
  t.equal((await stat(out)).mode & 0o777, 0o644)
  t.match(gen.out, `Map hash: ${mapHash(map)}`)

  const again = await tessera([...args, '--out', out])
  t.equal(again.code, 1, 'an existing --out is not replaced')
  t.match(again.err, /exists; give --force to replace it/)
  t.equal((await tessera([...args, '--out', out, '--force'])).code, 0)

  const stdout = await tessera(args)
  t.equal(stdout.code, 0)
  t.same(parseClusterMap(stdout.out).pools, map.pools, 'without --out the map goes to stdout')
  t.match(stdout.err, /Cluster prod/, 'and the summary to stderr')

  const ok = await tessera(['map', 'validate', out, '--layout'])
  t.equal(ok.code, 0, ok.err)
  t.match(ok.out, `${out}: valid`)
  t.match(ok.out, /1 pool, 4 nodes, 16 drives, 2 erasure sets, 1 gateway/)
  t.match(ok.out, /Erasure: 4\+4 \(k\+m\) on sets of 8 drives/)
  t.match(ok.out, `Map hash: ${mapHash(map)}`)
  t.match(ok.out, /POOL\s+SET\s+SLOT\s+NODE\s+DRIVE\n0\s+0\s+0\s+node1\s+\/mnt\/disk1\n/)

  const json = await tessera(['map', 'validate', out, '--json'])
  t.match(JSON.parse(json.out), { valid: true, summary: { sets: 2, hash: mapHash(map) } })
})

t.test('tessera map validate: every problem with its path, exit 1', async (t) => {
  const dir = t.testdir({
    'bad.yaml': [
      'cluster: prod',
      'erasure: { data: 4, parity: -1, blokSize: 1MiB }',
      'pools:',
      '  - nodes:',
      '      - { id: n1, address: "n1:99999", publicKey: 12D3KooWAAA, drives: [d1] }',
      '',
    ].join('\n'),
  })
  const r = await tessera(['map', 'validate', join(dir, 'bad.yaml')])
  t.equal(r.code, 1)
  t.match(r.err, /bad\.yaml: \d+ problems/)
  t.match(r.err, /erasure\.blokSize: unknown key "blokSize" \(did you mean "blockSize"\?\)/)
  t.match(r.err, /erasure\.parity: must be at least 0 \(got -1\)/)
  t.match(r.err, /pools\[0\]\.nodes\[0\]\.address: port 99999 is out of range/)
  t.match(r.err, /pools\[0\]\.nodes\[0\]\.drives\[0\]: must be an absolute path .*\(line 5\)/)
  t.equal(r.out, '')

  const missing = await tessera(['map', 'validate', join(dir, 'nope.yaml')])
  t.equal(missing.code, 1)
  t.match(missing.err, /cannot read the file/)

  const json = await tessera(['map', 'validate', join(dir, 'bad.yaml'), '--json'])
  t.equal(json.code, 1)
  t.match(JSON.parse(json.out), { valid: false, problems: [{ path: String }] })
})

t.test('tessera map generate: the error paths, as a process', async (t) => {
  const keys = await keysFile(t, hosts(1, 4))
  const base = ['map', 'generate', '--cluster', 'c', '--keys', keys, '--data', '4', '--parity']
  const badRange = await tessera([
    ...base,
    '4',
    '--nodes',
    'node{1..4}.example.net',
    '--drives',
    '/d',
  ])
  t.equal(badRange.code, 1)
  t.match(badRange.err, /tessera map: pool: "\{1\.\.4\}" in "node\{1\.\.4\}\.example\.net"/)
  t.match(badRange.err, /three dots/)

  const noKeys = await tessera([
    ...base,
    '4',
    '--nodes',
    'node{1...6}.example.net',
    '--drives',
    '/mnt/disk{1...4}',
  ])
  t.equal(noKeys.code, 1)
  t.match(noKeys.err, /no public key for node5\.example\.net, node6\.example\.net/)

  const tooWide = await tessera([
    ...base,
    '4',
    '--nodes',
    'node{1...2}.example.net',
    '--drives',
    '/mnt/disk{1...2}',
  ])
  t.equal(tooWide.code, 1)
  t.match(tooWide.err, /pools\[0\]: k\+m = 4\+4 = 8 is larger than the pool's 4 drive\(s\)/)
  t.equal(tooWide.out, '', 'nothing is written')

  const noPool = await tessera([...base, '4'])
  t.equal(noPool.code, 1)
  t.match(noPool.err, /give the pool's nodes and drives/)

  const badCount = await tessera([...base, 'two', '--pool', 'node{1...4}.example.net/d{1...2}'])
  t.equal(badCount.code, 1)
  t.match(badCount.err, /--parity two: want a whole number/)

  const noKeysOption = await tessera([
    'map',
    'generate',
    '--cluster',
    'c',
    '--data',
    '2',
    '--parity',
    '2',
    '--pool',
    'node{1...4}.example.net/d{1...2}',
  ])
  t.equal(noKeysOption.code, 1)
  t.match(noKeysOption.err, /give the nodes' public keys: --keys <file>/)
})

t.test('tessera map add-pool: expansion of a written map', async (t) => {
  const dir = t.testdir()
  const keys = await keysFile(t, hosts(1, 8))
  const first = await generateMap({
    cluster: 'grow',
    data: 2,
    parity: 2,
    pools: [{ nodes: 'node{1...4}.example.net', drives: '/mnt/disk{1...2}' }],
    gateways: [],
    keys: await keyLookup({ keys }),
  })
  const file = join(dir, 'cluster.yaml')
  await writeFile(file, stringifyClusterMap(first.map))
  const r = await tessera([
    'map',
    'add-pool',
    file,
    '--nodes',
    'node{5...8}.example.net',
    '--drives',
    '/mnt/disk{1...2}',
    '--keys',
    keys,
    '--out',
    file,
    '--force',
  ])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /Cluster grow: 2 pools, 8 nodes, 16 drives, 4 erasure sets/)
  const grown = parseClusterMap(await readFile(file, 'utf8'))
  t.same(grown.pools[0], first.map.pools[0])
  t.equal(grown.pools[1]!.nodes[3]!.id, 'node8')
})
