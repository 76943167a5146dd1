// A real IPFS client against this project's gateway: helia (`@helia/http`) with the gateway as
// its only router and block broker, and `@ipld/car` reading every CAR response.
//
//   node client.mjs GATEWAY_URL JOB_JSON  ->  one JSON report on stdout
//
// JOB_JSON: {"hamts": [ROOT...], "zarr": [ROOT...], "paths": [[ROOT, KEY]...]}
//
// - For each HAMT (and each Zarr dataset, which is a HAMT of Zarr keys) helia fetches every
//   block through the gateway (`?format=raw`) and checks it against its CID; the walk checks
//   that every key sits where its BLAKE3 hash says. The report has every key with the
//   SHA-256 of its value.
// - For each HAMT, CARs of the root (dups=n, dups=y, dag-scope=block) are read with
//   `@ipld/car`: every block hashed against its CID, the order depth-first as the
//   Content-Type says, the set of blocks complete, duplicates only with dups=y.
// - For Zarr datasets, every array's zarr.json is read and its chunk keys counted.
// - For each path, the CAR of `/ipfs/ROOT/KEY` is verified the trustless way: walk from the
//   root to the key with the CAR's blocks alone, then compare with the plain GET.
//
// Any failed check throws: the process exits non-zero with the reason on stderr.

import { createHeliaHTTP } from '@helia/http'
import { trustlessGateway } from '@helia/block-brokers'
import { httpGatewayRouting } from '@helia/routers'
import { CarBlockIterator } from '@ipld/car'
import * as dagCbor from '@ipld/dag-cbor'
import { blake3 as blake3Hash } from '@noble/hashes/blake3'
import { CID } from 'multiformats/cid'
import { from } from 'multiformats/hashes/hasher'
import { sha256 } from 'multiformats/hashes/sha2'
import { createHash } from 'node:crypto'

const [gateway, jobText] = process.argv.slice(2)
if (gateway == null || jobText == null) {
  throw new Error('usage: node client.mjs GATEWAY_URL JOB_JSON')
}
const job = JSON.parse(jobText)

// Node 20 lacks Promise.withResolvers, which helia's dependencies call.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

// Loopback only: nothing in this client may reach another host (helia's defaults name
// public gateways and a delegated router; they are all replaced below, and this makes sure).
const realFetch = globalThis.fetch
globalThis.fetch = async (input, init) => {
  const url = new URL(typeof input === 'string' ? input : input.url ?? String(input))
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`refusing a request to ${url.origin}: this client talks to loopback only`)
  }
  return realFetch(input, init)
}

const blake3 = from({ name: 'blake3', code: 0x1e, encode: (input) => blake3Hash(input) })
const hashers = { [blake3.code]: blake3, [sha256.code]: sha256 }
const DAG_CBOR = 0x71
const RAW = 0x55

const helia = await createHeliaHTTP({
  hashers: [blake3],
  blockBrokers: [trustlessGateway({ allowInsecure: true, allowLocal: true })],
  routers: [httpGatewayRouting({ gateways: [gateway], shuffle: false })],
  // No libp2p services: the default one is a delegated router on the public network.
  libp2p: { services: {} }
})

let fetched = 0

/** A block through helia: fetched from the gateway and verified against its CID. */
async function block (cid) {
  const out = helia.blockstore.get(cid)
  if (out instanceof Uint8Array) return out
  const chunks = []
  for await (const chunk of out) chunks.push(chunk)
  fetched += 1
  return Buffer.concat(chunks)
}

function hex (bytes) {
  return Buffer.from(bytes).toString('hex')
}

function sha256Hex (bytes) {
  return createHash('sha256').update(bytes).digest('hex')
}

function fail (message) {
  throw new Error(message)
}

/** The byte at `depth` of BLAKE3(key): the slot a key takes at that depth (py-hamt). */
function slotOf (key, depth) {
  return blake3Hash(new TextEncoder().encode(key))[depth]
}

/** Every key of the HAMT at `root` with its value's CID; every node checked. */
async function walkHamt (root) {
  const entries = new Map()
  const nodes = []
  async function visit (cid, depth, prefix) {
    if (cid.code !== DAG_CBOR) fail(`node ${cid} is not DAG-CBOR`)
    const node = dagCbor.decode(await block(cid))
    nodes.push(cid)
    if (!Array.isArray(node) || node.length !== 256) fail(`node ${cid} is not a list of 256 slots`)
    for (let slot = 0; slot < 256; slot++) {
      const item = node[slot]
      if (Array.isArray(item)) {
        if (item.length !== 1) fail(`link slot ${slot} of ${cid} holds ${item.length} items`)
        await visit(CID.asCID(item[0]) ?? fail(`slot ${slot} of ${cid} is not a link`), depth + 1, [...prefix, slot])
      } else {
        for (const [key, value] of Object.entries(item)) {
          const path = [...prefix, slot]
          for (let d = 0; d < path.length; d++) {
            if (slotOf(key, d) !== path[d]) fail(`key ${key} is in slot ${path[d]} at depth ${d}, its hash says ${slotOf(key, d)}`)
          }
          if (entries.has(key)) fail(`key ${key} twice`)
          entries.set(key, CID.asCID(value) ?? fail(`value of ${key} is not a CID`))
        }
      }
    }
  }
  await visit(root, 0, [])
  return { entries, nodes }
}

/** The bytes of a value: a raw or DAG-CBOR block as it is. */
async function valueBytes (cid) {
  if (cid.multihash.code === 0x00) return cid.multihash.digest
  if (cid.code !== RAW && cid.code !== DAG_CBOR) fail(`value ${cid}: codec ${cid.code} is not handled here`)
  return block(cid)
}

/** Hashes `bytes` as `cid` says and compares. */
async function verify (cid, bytes) {
  const hasher = hashers[cid.multihash.code] ?? fail(`no hasher for ${cid}`)
  const digest = await hasher.digest(bytes)
  if (hex(digest.digest) !== hex(cid.multihash.digest)) fail(`block ${cid} does not match its CID`)
}

/** Every block of a CAR response, verified, in order. */
async function readCar (url, headers = {}) {
  const res = await fetch(url, { headers })
  if (res.status !== 200) fail(`${url}: status ${res.status}`)
  const type = res.headers.get('content-type') ?? ''
  if (!type.startsWith('application/vnd.ipld.car')) fail(`${url}: content type ${type}`)
  const iterator = await CarBlockIterator.fromIterable(res.body)
  const roots = (await iterator.getRoots()).map(String)
  const blocks = []
  for await (const { cid, bytes } of iterator) {
    await verify(cid, bytes)
    blocks.push({ cid, bytes })
  }
  return { type, roots, blocks }
}

/** The links of a DAG-CBOR value in the order the block holds them. */
function linksOf (value, out = []) {
  const cid = CID.asCID(value)
  if (cid != null) {
    out.push(cid)
  } else if (Array.isArray(value)) {
    for (const v of value) linksOf(v, out)
  } else if (value != null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const v of Object.values(value)) linksOf(v, out)
  }
  return out
}

/** The depth-first pre-order of the DAG under `root` over the blocks of `byCid`. */
function dfsOrder (root, byCid, dups) {
  const order = []
  const seen = new Set()
  const stack = [root]
  while (stack.length > 0) {
    const cid = stack.pop()
    if (cid.multihash.code === 0x00) continue
    const key = cid.toString()
    if (!dups && seen.has(key)) continue
    seen.add(key)
    order.push(key)
    const bytes = byCid.get(key) ?? fail(`block ${key} is missing from the CAR`)
    const links = cid.code === DAG_CBOR ? linksOf(dagCbor.decode(bytes)) : []
    for (let i = links.length - 1; i >= 0; i--) stack.push(links[i])
  }
  return order
}

/** The CAR checks of one root whose blocks the walk already fetched. */
async function checkCars (root, expected) {
  const base = `${gateway}/ipfs/${root}`
  const report = {}
  for (const [name, url, headers, dups] of [
    ['dups_n', `${base}?format=car`, {}, false],
    ['dups_y', `${base}`, { accept: 'application/vnd.ipld.car; version=1; order=dfs; dups=y' }, true]
  ]) {
    const car = await readCar(url, headers)
    if (car.roots.length !== 1 || car.roots[0] !== root.toString()) fail(`${name}: roots ${car.roots}`)
    const want = `application/vnd.ipld.car; version=1; order=dfs; dups=${dups ? 'y' : 'n'}`
    if (car.type !== want) fail(`${name}: Content-Type ${car.type}, wanted ${want}`)
    const byCid = new Map(car.blocks.map(({ cid, bytes }) => [cid.toString(), bytes]))
    const got = car.blocks.map(({ cid }) => cid.toString())
    const order = dfsOrder(root, byCid, dups)
    if (got.join() !== order.join()) fail(`${name}: blocks are not in depth-first order`)
    const unique = new Set(got)
    if (!dups && unique.size !== got.length) fail(`${name}: duplicate blocks with dups=n`)
    for (const cid of expected) {
      if (!unique.has(cid)) fail(`${name}: block ${cid} of the DAG is missing`)
    }
    if (unique.size !== expected.size) fail(`${name}: ${unique.size} distinct blocks, the DAG has ${expected.size}`)
    report[name] = got.length
  }
  const scoped = await readCar(`${base}?format=car&dag-scope=block`)
  if (scoped.blocks.length !== 1 || !scoped.blocks[0].cid.equals(root)) fail('dag-scope=block: not the root block alone')
  report.block_scope = scoped.blocks.length
  return report
}

/** A path CAR checked the trustless way: from the root to the key with its blocks alone. */
async function checkPath (root, key) {
  const segments = key.split('/').map(encodeURIComponent).join('/')
  const car = await readCar(`${gateway}/ipfs/${root}/${segments}?format=car`)
  if (car.roots[0] !== root.toString()) fail(`path ${key}: roots ${car.roots}`)
  const byCid = new Map(car.blocks.map(({ cid, bytes }) => [cid.toString(), bytes]))
  const used = new Set()
  const take = (cid) => {
    used.add(cid.toString())
    return byCid.get(cid.toString()) ?? fail(`path ${key}: block ${cid} is not in the CAR`)
  }
  let cid = root
  let value = null
  for (let depth = 0; value == null; depth++) {
    const node = dagCbor.decode(take(cid))
    const slot = node[slotOf(key, depth)]
    if (Array.isArray(slot)) {
      cid = CID.asCID(slot[0])
    } else {
      value = CID.asCID(slot[key]) ?? fail(`path ${key}: not in the bucket it hashes to`)
    }
  }
  const bytes = value.multihash.code === 0x00 ? value.multihash.digest : take(value)
  if (used.size !== byCid.size) fail(`path ${key}: ${byCid.size - used.size} blocks in the CAR are not on the path`)
  const plain = await fetch(`${gateway}/ipfs/${root}/${segments}`)
  const body = Buffer.from(await plain.arrayBuffer())
  if (plain.status !== 200 || !body.equals(Buffer.from(bytes))) fail(`path ${key}: the plain GET differs from the verified value`)
  return { blocks: car.blocks.length, sha256: sha256Hex(bytes) }
}

/** The arrays of a Zarr v3 dataset and how many of their chunk keys are present. */
function checkZarr (keys, docs) {
  const root = docs.get('zarr.json') ?? fail('no root zarr.json')
  if (root.zarr_format !== 3) fail('the root zarr.json is not Zarr v3')
  const arrays = {}
  for (const [key, doc] of docs) {
    if (doc.node_type !== 'array') continue
    const prefix = key.slice(0, -'zarr.json'.length)
    const shape = doc.shape
    const chunk = doc.chunk_grid?.configuration?.chunk_shape ?? fail(`${key}: no regular chunk grid`)
    const separator = doc.chunk_key_encoding?.configuration?.separator ?? '/'
    const counts = shape.map((s, i) => Math.ceil(s / chunk[i]))
    let expected = 0
    let present = 0
    const index = counts.map(() => 0)
    for (;;) {
      expected += 1
      const name = `${prefix}c${separator}${index.join(separator)}`
      if (keys.has(name)) present += 1
      let d = index.length - 1
      while (d >= 0 && ++index[d] === counts[d]) index[d--] = 0
      if (d < 0) break
    }
    arrays[prefix.replace(/\/$/, '')] = { shape, chunk_shape: chunk, expected, present }
  }
  return arrays
}

const report = { hamts: {}, zarr: {}, paths: [] }
for (const text of [...(job.hamts ?? []), ...(job.zarr ?? [])]) {
  const root = CID.parse(text)
  const { entries, nodes } = await walkHamt(root)
  const values = {}
  const all = new Set(nodes.map(String))
  const docs = new Map()
  for (const [key, cid] of entries) {
    const bytes = await valueBytes(cid)
    values[key] = sha256Hex(bytes)
    if (cid.multihash.code !== 0x00) all.add(cid.toString())
    if (key === 'zarr.json' || key.endsWith('/zarr.json')) docs.set(key, JSON.parse(Buffer.from(bytes).toString('utf8')))
  }
  const entry = { nodes: nodes.length, values, cars: await checkCars(root, all) }
  if ((job.zarr ?? []).includes(text)) {
    report.zarr[text] = { ...entry, arrays: checkZarr(new Set(entries.keys()), docs) }
  } else {
    report.hamts[text] = entry
  }
}
for (const [root, key] of job.paths ?? []) {
  report.paths.push({ root, key, ...(await checkPath(CID.parse(root), key)) })
}
report.blocks_fetched_by_helia = fetched
await helia.stop()
process.stdout.write(JSON.stringify(report) + '\n')
