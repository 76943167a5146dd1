// The IPFS node the tests run: the JavaScript implementation (npm `ipfs` 0.66), which serves
// the Kubo RPC API and a gateway. No Kubo binary can be installed on our machines; see
// store-kubo/README.md for how this node differs from Kubo and where each difference is
// handled.
//
//   node node.mjs REPO_DIR API_PORT GATEWAY_PORT
//
// Offline, loopback only, no bootstrap peers, no discovery; BLAKE3 (multihash 0x1e) is
// registered so `hash=blake3` / `mhtype=blake3` work as on Kubo. Prints "ready" when both
// servers listen; SIGTERM or SIGINT stops it.

import { Daemon } from 'ipfs-daemon'
import { createLibp2p } from 'libp2p'
import { blake3 } from '@noble/hashes/blake3'
import { from } from 'multiformats/hashes/hasher'

// A transitive dependency calls Promise.withResolvers, which Node 20 lacks.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const [repo, apiPort, gatewayPort] = process.argv.slice(2)
if (!repo || !apiPort || !gatewayPort) {
  console.error('usage: node node.mjs REPO_DIR API_PORT GATEWAY_PORT')
  process.exit(2)
}

const blake3Hasher = from({
  name: 'blake3',
  code: 0x1e,
  encode: (input) => blake3(input)
})

const daemon = new Daemon({
  repo,
  offline: true,
  init: { profiles: ['test'], emptyRepo: true },
  preload: { enabled: false },
  config: {
    Addresses: {
      API: `/ip4/127.0.0.1/tcp/${apiPort}`,
      Gateway: `/ip4/127.0.0.1/tcp/${gatewayPort}`,
      RPC: '',
      Swarm: [],
      Delegates: []
    },
    Bootstrap: [],
    Discovery: { MDNS: { Enabled: false }, webRTCStar: { Enabled: false } }
  },
  ipld: { hashers: [blake3Hasher] },
  // No listen addresses: tell the transport manager that is fine.
  libp2p: ({ libp2pOptions }) => createLibp2p({
    ...libp2pOptions,
    start: false,
    transportManager: { faultTolerance: 1 }
  })
})

let stopping = false
async function stop () {
  if (stopping) return
  stopping = true
  try {
    await daemon.stop()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

await daemon.start()
console.log('ready')
