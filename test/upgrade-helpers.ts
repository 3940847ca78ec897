// What the hand-over tests share: two images (PCR overrides) on one simulated CA, the
// maintainers and their release signatures, a relay reader, and a "candidate": a new build
// asking a holder for its key by hand, so each refusal can be provoked on purpose.
import { randomBytes } from 'node:crypto'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import type { Filter } from 'nostr-tools/filter'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { buildRootEvent } from '../nec01/event.js'
import { buildReleaseSignature } from '../nec01/release.js'
import type { NostrEvent } from '../nec01/types.js'
import type { CodePcrs, LineageEntry } from '../nec01/upgrade.js'
import { openSimulator, type NsmSimulator } from '../src/nsm/simulator.js'
import { createRelayPool, type RelayPool } from '../src/relays/pool.js'
import { identityFromSecret, type Identity } from '../src/service/identity.js'
import { CallError, createRpcCaller, type RpcCaller } from '../src/upgrade/call.js'
import type { UpgradePolicy } from '../src/upgrade/policy.js'
import { quietLogger, startTestService, type TestService } from './service-harness.js'

export const REPO = 'https://example.test/nec01'

export interface Image {
  boot: Record<number, Uint8Array>
  pcrs: CodePcrs
}

export function randomImage(): Image {
  const boot = { 0: new Uint8Array(randomBytes(48)), 1: new Uint8Array(randomBytes(48)), 2: new Uint8Array(randomBytes(48)) }
  return { boot, pcrs: { 0: bytesToHex(boot[0]), 1: bytesToHex(boot[1]), 2: bytesToHex(boot[2]) } }
}

export interface Person {
  sk: Uint8Array
  pubkey: string
}

export function person(): Person {
  const sk = generateSecretKey()
  return { sk, pubkey: getPublicKey(sk) }
}

export function release(by: Person, pcrs: CodePcrs, t: 'prod' | 'dev' = 'dev', r = REPO): NostrEvent {
  return finalizeEvent(buildReleaseSignature({ pcrs, r, t }), by.sk) as NostrEvent
}

export function policyOf(maintainers: Person[], threshold: number, cooldownSec: number): UpgradePolicy {
  return { maintainers: maintainers.map((m) => m.pubkey), threshold, repo: REPO, cooldownSec, devMayReceiveProd: false }
}

export function poolOn(url: string, identity: Identity): RelayPool {
  return createRelayPool({ relays: [{ url, read: true, write: true }], logger: quietLogger, backoff: { initialMs: 50, maxMs: 200 }, signAuth: async (t) => identity.sign(t) })
}

/** Stored events matching the filter on the relay. */
export async function stored(pool: RelayPool, filter: Filter): Promise<NostrEvent[]> {
  return pool.fetchEvents([filter], { timeoutMs: 5000 })
}

/** The refusal code of a call ("UPGRADE_X: …" → "X"), or 'OK' when it was answered. */
export async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call
    return 'OK'
  } catch (err) {
    if (!(err instanceof CallError)) throw err
    const m = /^UPGRADE_([A-Z_]+):/.exec(err.message)
    return m?.[1] ?? err.code
  }
}

export interface Candidate {
  identity: Identity
  simulator: NsmSimulator
  pool: RelayPool
  /** a caller to the holder as this candidate; `as` calls with another key */
  call: RpcCaller
  /** a root event of this candidate, bound to `nonce` (hex) when given */
  root(nonce?: string): Promise<NostrEvent>
  /** challenge, attest with its nonce: what upgrade_request and upgrade_complete take */
  proof(): Promise<{ nonce: string; root: NostrEvent }>
  close(): Promise<void>
}

/** A new build that asks by hand: its own simulator (image, debug, CA) and key. */
export async function candidate(o: { stateDir: string; relay: string; holder: string; image: Image; debug?: boolean }): Promise<Candidate> {
  const simulator = await openSimulator({ stateDir: o.stateDir, bootPcrs: o.image.boot, debug: o.debug ?? false })
  const identity = identityFromSecret(generateSecretKey())
  const pool = poolOn(o.relay, identity)
  const call = createRpcCaller({ pool, identity, target: o.holder, timeoutMs: 15_000 })
  async function root(nonce?: string): Promise<NostrEvent> {
    const doc = await simulator.attest({ publicKey: hexToBytes(identity.pubkey), ...(nonce === undefined ? {} : { nonce: hexToBytes(nonce) }) })
    return identity.sign(buildRootEvent({ attestation: doc, t: 'dev', expiration: Math.floor(Date.now() / 1000) + 1800 }))
  }
  return {
    identity,
    simulator,
    pool,
    call,
    root,
    async proof() {
      const { nonce } = (await call('upgrade_challenge', {})) as { nonce: string }
      return { nonce, root: await root(nonce) }
    },
    async close() {
      await pool.close()
      await simulator.close()
    },
  }
}

export interface TwoBuilds {
  /** the npub's hex key, held first by image A, now by image B */
  pubkey: string
  imageA: Image
  imageB: Image
  /** the build that holds the key now (image B, rebooted into it) */
  current: TestService
  close(): Promise<void>
}

/**
 * A whole hand-over on `relay`, the shortest way: holder A (cooldown 1 s), new build B asking
 * as a service, B "rebooted" into the key it received. Releases for both are on the relay.
 */
export async function twoBuilds(relay: string, stateDir: string): Promise<TwoBuilds> {
  const [imageA, imageB, m1] = [randomImage(), randomImage(), person()]
  const secret = generateSecretKey()
  const reader = poolOn(relay, identityFromSecret(generateSecretKey()))
  const services: TestService[] = []
  try {
    for (const e of [release(m1, imageA.pcrs), release(m1, imageB.pcrs)]) await reader.publish(e)
    const policy = policyOf([m1], 1, 1)
    const holder = await startTestService({ relays: [relay], stateDir, nsm: { bootPcrs: imageA.boot }, config: { identitySecret: async () => secret, upgrade: { policy, restoreTimeoutMs: 3000 } } })
    services.push(holder)
    let received: { secret: Uint8Array; lineage: LineageEntry[] } | null = null
    const asking = await startTestService({
      relays: [relay],
      stateDir,
      nsm: { bootPcrs: imageB.boot },
      config: { upgrade: { policy: null, request: { holder: getPublicKey(secret), releases: [release(m1, imageB.pcrs)], pollMs: 300, adopt: async (h) => void (received = { secret: h.secret, lineage: h.lineage }) } } },
    })
    services.push(asking)
    const outcome = await asking.service.upgrade.request
    if (outcome?.ok !== true || received === null) throw new Error(`the hand-over failed: ${JSON.stringify(outcome)}`)
    const got = received as { secret: Uint8Array; lineage: LineageEntry[] }
    await asking.close()
    const current = await startTestService({ relays: [relay], stateDir, nsm: { bootPcrs: imageB.boot }, config: { identitySecret: async () => got.secret, upgrade: { policy: null, lineage: got.lineage } } })
    services.push(current)
    return {
      pubkey: getPublicKey(secret),
      imageA,
      imageB,
      current,
      async close() {
        for (const s of services) await s.close().catch(() => undefined)
      },
    }
  } finally {
    await reader.close()
  }
}
