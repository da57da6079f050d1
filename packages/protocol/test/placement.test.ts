import t from 'tap'
import { type ClusterMap, parseClusterMap, stringifyClusterMap } from '../src/cluster-map.ts'
import {
  type ClusterLayout,
  computeLayout,
  placementHash,
  placeObject,
  setsOfNode,
} from '../src/placement.ts'

interface NodeInit {
  drives: number
  zone?: string
}

/** A map of one pool per entry of `pools`; nodes n1, n2, … with drives /d/0, /d/1, …. */
function makeMap(data: number, parity: number, pools: NodeInit[][]): ClusterMap {
  let id = 0
  return {
    cluster: 'placement-test',
    erasure: { data, parity, blockSize: 1024 * 1024, inlineBelow: 128 * 1024 },
    pools: pools.map((nodes) => ({
      nodes: nodes.map(({ drives, zone }) => {
        id++
        return {
          id: `n${id}`,
          address: `10.0.0.${id}:7373`,
          publicKey: `K${id}`,
          drives: Array.from({ length: drives }, (_, d) => `/d/${d}`),
          ...(zone === undefined ? {} : { zone }),
        }
      }),
    })),
    gateways: [],
  }
}

const equalNodes = (nodes: number, drives: number): NodeInit[] =>
  Array.from({ length: nodes }, () => ({ drives }))

/** Shards per node id in each set of a pool. */
function perNode(layout: ClusterLayout, pool: number): Map<string, number>[] {
  return layout.pools[pool]!.sets.map((set) => {
    const counts = new Map<string, number>()
    for (const d of set.drives) counts.set(d.nodeId, (counts.get(d.nodeId) ?? 0) + 1)
    return counts
  })
}

t.test('the layout is a pure function of the map', async (t) => {
  const map = makeMap(4, 2, [equalNodes(6, 4), equalNodes(3, 4)])
  const layout = computeLayout(map)
  t.same(computeLayout(map), layout, 'computed twice: deep-equal')
  const copy = parseClusterMap(stringifyClusterMap(map))
  t.same(computeLayout(copy), layout, 'from the same map written out and read back: deep-equal')
  t.equal(layout.n, 6)
  t.same(
    layout.pools.map((p) => [p.index, p.sets.length]),
    [
      [0, 4],
      [1, 2],
    ],
    'pool indices in map order, drives / n sets each',
  )
})

t.test('the layout is part of the on-disk format: known maps give known slots', async (t) => {
  // Drive format files record pool, set and slot; a change here strands every existing drive.
  const slots = (layout: ClusterLayout) =>
    layout.pools.map((p) => p.sets.map((s) => s.drives.map((d) => `${d.nodeId}${d.path}`)))
  t.same(slots(computeLayout(makeMap(2, 1, [equalNodes(3, 2)]))), [
    [
      ['n1/d/0', 'n2/d/0', 'n3/d/0'],
      ['n1/d/1', 'n2/d/1', 'n3/d/1'],
    ],
  ])
  const zoned = makeMap(1, 1, [
    [
      { drives: 2, zone: 'a' },
      { drives: 2, zone: 'b' },
      { drives: 1, zone: 'a' },
      { drives: 1, zone: 'b' },
    ],
  ])
  t.same(slots(computeLayout(zoned)), [
    [
      ['n1/d/0', 'n2/d/0'],
      ['n1/d/1', 'n2/d/1'],
      ['n3/d/0', 'n4/d/0'],
    ],
  ])
  const layout = computeLayout(zoned)
  for (const set of layout.pools[0]!.sets) {
    for (const [slot, d] of set.drives.entries()) {
      t.same(
        [d.pool, d.set, d.slot],
        [0, set.index, slot],
        `set ${set.index} slot ${slot} knows its place`,
      )
    }
  }
})

t.test('sets span as many nodes as they can', async (t) => {
  const cases: [string, number, number, NodeInit[]][] = [
    ['4 nodes × 6 drives, 4+2', 4, 2, equalNodes(4, 6)],
    ['6 nodes × 4 drives, 4+2', 4, 2, equalNodes(6, 4)],
    ['3 nodes × 4 drives, 2+2', 2, 2, equalNodes(3, 4)],
    ['8 nodes × 12 drives, 8+4', 8, 4, equalNodes(8, 12)],
    ['16 nodes × 3 drives, 8+4', 8, 4, equalNodes(16, 3)],
    ['5 nodes × 2 drives, 4+1', 4, 1, equalNodes(5, 2)],
    ['2 nodes × 9 drives, 3+3', 3, 3, equalNodes(2, 9)],
    ['7 nodes × 6 drives, 4+3', 4, 3, equalNodes(7, 6)],
  ]
  for (const [name, data, parity, nodes] of cases) {
    const n = data + parity
    const layout = computeLayout(makeMap(data, parity, [nodes]))
    const sets = layout.pools[0]!.sets
    const total = nodes.reduce((sum, node) => sum + node.drives, 0)
    t.equal(sets.length, total / n, `${name}: ${total / n} sets`)
    const spans = perNode(layout, 0)
    const want = Math.min(n, nodes.length)
    const most = Math.ceil(n / nodes.length)
    t.ok(
      spans.every((counts) => counts.size === want),
      `${name}: every set spans ${want} nodes`,
      { nodesPerSet: spans.map((c) => c.size) },
    )
    t.ok(
      spans.every((counts) => Math.max(...counts.values()) <= most),
      `${name}: no node holds more than ${most} shards of a set`,
      { mostPerSet: spans.map((c) => Math.max(...c.values())) },
    )
    const used = sets.flatMap((s) => s.drives.map((d) => `${d.nodeId}${d.path}`))
    t.equal(new Set(used).size, total, `${name}: every drive is in exactly one set`)
    t.ok(
      sets.every((s) => s.drives.length === n),
      `${name}: every set has n = ${n} drives`,
    )
  }
})

t.test('with unequal nodes, no set gets more of a node than any layout must give it', async (t) => {
  // Some set must get ceil(d / S) of a node's d drives; the layout never gives more.
  const cases: [number, number, number[]][] = [
    [4, 2, [6, 3, 3]],
    [4, 2, [10, 2]],
    [2, 1, [1, 2, 3, 4, 5, 6]],
    [8, 4, [12, 8, 4, 12, 12]],
    [3, 1, [7, 1, 1, 1, 1, 1]],
  ]
  for (const [data, parity, counts] of cases) {
    const nodes = counts.map((drives) => ({ drives }))
    const layout = computeLayout(makeMap(data, parity, [nodes]))
    const sets = layout.pools[0]!.sets.length
    const spans = perNode(layout, 0)
    const worst = counts.map((_, i) => Math.max(...spans.map((c) => c.get(`n${i + 1}`) ?? 0)))
    t.same(
      worst,
      counts.map((d) => Math.ceil(d / sets)),
      `drives per node ${counts}, ${data}+${parity}: most shards of a set per node`,
    )
  }
})

t.test('zones interleave: sets spread over zones as evenly as the drives allow', async (t) => {
  // Dealt node by node in map order, ignoring zones, two of these three 1+1 sets would have
  // both shards in one zone; grouped by zone, every set spans both.
  const map = makeMap(1, 1, [
    [
      { drives: 2, zone: 'a' },
      { drives: 2, zone: 'b' },
      { drives: 1, zone: 'a' },
      { drives: 1, zone: 'b' },
    ],
  ])
  const zoneOf = new Map(map.pools[0]!.nodes.map((node) => [node.id, node.zone]))
  const spans = computeLayout(map).pools[0]!.sets.map(
    (set) => new Set(set.drives.map((d) => zoneOf.get(d.nodeId))).size,
  )
  t.same(spans, [2, 2, 2], 'each 1+1 set has one shard per zone: losing a zone loses no set')

  const cases: [number, number, NodeInit[]][] = [
    [4, 2, ['z1', 'z1', 'z2', 'z2', 'z3', 'z3'].map((zone) => ({ drives: 4, zone }))],
    [4, 2, ['z1', 'z2', 'z3', 'z1', 'z2', 'z3'].map((zone) => ({ drives: 4, zone }))],
    [2, 2, ['a', 'a', 'a', 'b', 'c', 'b'].map((zone, i) => ({ drives: 1 + (i % 3), zone }))],
    [
      8,
      4,
      ['r1', 'r2', 'r1', 'r2', 'r1', 'r2'].map((zone, i) => ({ drives: 2 * (1 + (i % 3)), zone })),
    ],
  ]
  for (const [data, parity, nodes] of cases) {
    const layout = computeLayout(makeMap(data, parity, [nodes]))
    const sets = layout.pools[0]!.sets
    const zoneDrives = new Map<string, number>()
    for (const node of nodes)
      zoneDrives.set(node.zone!, (zoneDrives.get(node.zone!) ?? 0) + node.drives)
    const zoneOfNode = (id: string) => nodes[Number(id.slice(1)) - 1]!.zone!
    const uneven: string[] = []
    for (const set of sets) {
      for (const [zone, drives] of zoneDrives) {
        const got = set.drives.filter((d) => zoneOfNode(d.nodeId) === zone).length
        const lo = Math.floor(drives / sets.length)
        if (got < lo || got > Math.ceil(drives / sets.length)) {
          uneven.push(`set ${set.index} has ${got} of zone ${zone}'s ${drives} drives`)
        }
      }
    }
    t.same(uneven, [], `${data}+${parity} over zones ${nodes.map((n) => n.zone)}: even spread`)
  }
})

t.test('placementHash is fixed forever', async (t) => {
  // Known values: the first 8 bytes, big-endian, of sha256('photos/cat.jpg') and
  // sha256('b/ключ/ü') (UTF-8). Changing the derivation moves every stored object.
  t.equal(placementHash('photos', 'cat.jpg'), 0x9c4712116d1c1877n)
  t.equal(placementHash('b', 'ключ/ü'), 0x7326acdf325654aan)
  t.not(placementHash('photos', 'cat.jpg'), placementHash('photo', 's/cat.jpg') + 1n)
})

t.test('objects spread evenly over sets, and rotations over slots', async (t) => {
  // Pool 0 has 8 sets, pool 1 has 3 (not a power of two, so the modulo is exercised).
  const map = makeMap(8, 4, [equalNodes(8, 12), equalNodes(6, 6)])
  const layout = computeLayout(map)
  const n = layout.n
  const KEYS = 100_000
  let worstSet = 0
  let worstRotation = 0
  for (const pool of [0, 1]) {
    const sets = layout.pools[pool]!.sets.length
    const perSet = new Array<number>(sets).fill(0)
    const perRotation = new Array<number>(n).fill(0)
    let badDistribution = 0
    for (let i = 0; i < KEYS; i++) {
      const { set, distribution } = placeObject(layout, pool, 'bucket', `photos/${i}.jpg`)
      perSet[set.index]!++
      const rotation = distribution[0]!
      perRotation[rotation]!++
      if (distribution.some((slot, shard) => slot !== (shard + rotation) % n)) badDistribution++
    }
    const deviation = (counts: number[]) => {
      const mean = KEYS / counts.length
      return Math.max(...counts.map((c) => Math.abs(c - mean) / mean))
    }
    const dSet = deviation(perSet)
    const dRotation = deviation(perRotation)
    worstSet = Math.max(worstSet, dSet)
    worstRotation = Math.max(worstRotation, dRotation)
    t.comment(
      `pool ${pool}: ${sets} sets, worst set deviation ${(dSet * 100).toFixed(2)}%, ` +
        `worst rotation deviation ${(dRotation * 100).toFixed(2)}%`,
    )
    t.ok(dSet <= 0.05, `pool ${pool}: every set within ±5% of the mean`, { perSet })
    t.ok(
      perRotation.every((c) => c > 0),
      `pool ${pool}: all ${n} rotations are used`,
      { perRotation },
    )
    t.ok(dRotation <= 0.05, `pool ${pool}: every rotation within ±5% of the mean`, { perRotation })
    t.equal(badDistribution, 0, `pool ${pool}: distribution[i] = (i + rotation) mod n`)
  }
  t.comment(
    `worst set deviation ${(worstSet * 100).toFixed(2)}%, ` +
      `worst rotation deviation ${(worstRotation * 100).toFixed(2)}% over ${KEYS} keys`,
  )
})

t.test('placeObject is deterministic and depends on bucket and key', async (t) => {
  const layout = computeLayout(makeMap(4, 2, [equalNodes(6, 4)]))
  const a = placeObject(layout, 0, 'photos', 'cat.jpg')
  const b = placeObject(computeLayout(makeMap(4, 2, [equalNodes(6, 4)])), 0, 'photos', 'cat.jpg')
  t.same(b, a, 'same map, bucket and key: same set and distribution')
  const h = placementHash('photos', 'cat.jpg')
  t.equal(a.set.index, Number(h % 4n), 'set = hash mod sets')
  t.equal(a.distribution[0], Number((h >> 32n) % 6n), 'rotation = (hash >> 32) mod n')
  t.same([...a.distribution].sort(), [0, 1, 2, 3, 4, 5], 'the distribution is a permutation')
  const others = new Set<string>()
  for (const bucket of ['photos', 'docs', 'logs', 'tmp', 'a', 'b', 'c', 'd']) {
    const p = placeObject(layout, 0, bucket, 'cat.jpg')
    others.add(`${p.set.index}/${p.distribution[0]}`)
  }
  t.ok(others.size > 1, 'the bucket is part of the hash')
  t.throws(() => placeObject(layout, 1, 'photos', 'cat.jpg'), RangeError, 'an unknown pool throws')
})

t.test('setsOfNode returns exactly the drives of the node', async (t) => {
  const map = makeMap(4, 2, [equalNodes(6, 4), [{ drives: 6 }], equalNodes(3, 2)])
  const layout = computeLayout(map)
  let slots = 0
  for (const pool of map.pools) {
    for (const node of pool.nodes) {
      const mine = setsOfNode(layout, node.id)
      slots += mine.length
      t.same(
        mine.map((d) => d.path).sort(),
        [...node.drives].sort(),
        `${node.id}: its ${node.drives.length} drives`,
      )
      t.ok(
        mine.every(
          (d) => d.nodeId === node.id && layout.pools[d.pool]!.sets[d.set]!.drives[d.slot] === d,
        ),
        `${node.id}: each slot is the one in the layout`,
      )
    }
  }
  const all = layout.pools.reduce((sum, p) => sum + p.sets.length * layout.n, 0)
  t.equal(slots, all, 'the nodes together own every slot once')
  t.same(setsOfNode(layout, 'nobody'), [], 'an unknown node owns nothing')
})

t.test('computeLayout refuses a pool that cannot be cut into sets', async (t) => {
  t.throws(() => computeLayout(makeMap(4, 2, [equalNodes(4, 4)])), {
    name: 'RangeError',
    message: /pool 0 has 16 drives, which cannot be cut into sets of 6/,
  })
})
