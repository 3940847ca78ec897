// A client for tests that talk to the service over real relays: a key of its own, a relay
// pool, and the three ways to ask (NIP-17, NIP-04, JSON-RPC). Everything goes over the
// wire; the only shortcut is that the test holds the client's secret key, to unwrap seals.
import * as kinds from 'nostr-tools/kinds'
import assert from 'node:assert/strict'
import { generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import type { Filter } from 'nostr-tools/filter'
import { verifyTeeRoot } from '../nec01/event.js'
import { parseRpcResponse, RPC_KIND, type RpcResponse } from '../nec01/rpc.js'
import type { NostrEvent, VerifyResult } from '../nec01/types.js'
import { createRelayPool, type RelayPool } from '../src/relays/pool.js'
import { identityFromSecret, type Identity, type Rumor } from '../src/service/identity.js'

import { quietLogger } from './service-harness.js'

/** Upper bound for any wait: a safety net, never a measurement. */
export const SAFETY_MS = 20_000

/** Polls `cond` until it holds; throws after the safety bound. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = SAFETY_MS): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/**
 * Waits until `read()` has returned the same value on `rounds` consecutive polls (and at
 * least `min`): how a test decides that no more replies are coming.
 */
export async function stable(read: () => Promise<number> | number, what: string, opts: { min?: number; rounds?: number; gapMs?: number } = {}): Promise<number> {
  const { min = 0, rounds = 8, gapMs = 50 } = opts
  const deadline = Date.now() + SAFETY_MS
  let last = -1
  let same = 0
  for (;;) {
    const value = await read()
    same = value === last ? same + 1 : 0
    last = value
    if (value >= min && same >= rounds) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to settle (last ${value})`)
    await new Promise((r) => setTimeout(r, gapMs))
  }
}

export interface Unwrapped {
  wrap: NostrEvent
  seal: NostrEvent
  rumor: Rumor
}

/** NIP-59 by hand, keeping the seal: the test checks who signed it. */
export function unwrapWithSeal(wrap: NostrEvent, sk: Uint8Array): Unwrapped {
  const seal = JSON.parse(nip44.v2.decrypt(wrap.content, nip44.v2.utils.getConversationKey(sk, wrap.pubkey))) as NostrEvent
  assert.ok(verifyEvent(seal), 'the seal is signed')
  const rumor = JSON.parse(nip44.v2.decrypt(seal.content, nip44.v2.utils.getConversationKey(sk, seal.pubkey))) as Rumor
  return { wrap, seal, rumor }
}

export interface Collector<T> {
  items: T[]
  close(): void
}

export class Peer {
  readonly sk: Uint8Array
  readonly identity: Identity
  readonly pubkey: string
  readonly pool: RelayPool

  constructor(relays: string[], sk: Uint8Array = generateSecretKey()) {
    this.sk = sk
    this.identity = identityFromSecret(sk)
    this.pubkey = getPublicKey(sk)
    this.pool = createRelayPool({
      relays: relays.map((url) => ({ url, read: true, write: true })),
      logger: quietLogger,
      backoff: { initialMs: 50, maxMs: 200 },
      signAuth: async (t) => this.identity.sign(t),
    })
  }

  /** Publishes and asserts at least one relay took it. */
  async publish(event: NostrEvent, relays?: string[]): Promise<void> {
    const report = await this.pool.publish(event, relays === undefined ? {} : { relays })
    assert.ok(report.some((r) => r.ok), `a relay accepted kind ${event.kind}: ${JSON.stringify(report)}`)
  }

  nip04(service: string, text: string, extraTags: string[][] = []): NostrEvent {
    return this.identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: now(), content: this.identity.nip04Encrypt(service, text), tags: [['p', service], ...extraTags] })
  }

  nip17(service: string, text: string): { wrap: NostrEvent; rumor: Rumor } {
    return this.identity.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: now(), content: text, tags: [['p', service]] }, service)
  }

  rpc(service: string, body: unknown, extraTags: string[][] = []): NostrEvent {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    return this.identity.sign({ kind: RPC_KIND, created_at: now(), content: this.identity.nip44Encrypt(service, text), tags: [['p', service], ...extraTags] })
  }

  /** A live subscription, open (EOSE from every relay) before it returns. */
  async collect(filter: Filter, relays?: string[]): Promise<Collector<{ event: NostrEvent; relay: string }>> {
    const items: Array<{ event: NostrEvent; relay: string }> = []
    const eosed = new Set<string>()
    const want = relays ?? this.pool.status().map((s) => s.url)
    const sub = this.pool.subscribe([filter], {
      onevent: (event, relay) => items.push({ event, relay }),
      oneose: (url) => eosed.add(url),
      ...(relays === undefined ? {} : { relays }),
    })
    await until(() => want.every((u) => eosed.has(u)), 'EOSE on the reply subscription')
    return { items, close: () => sub.close() }
  }

  /** Replies from `service` to us of one kind, collected live. */
  replies(service: string, kind: number, relays?: string[]): Promise<Collector<{ event: NostrEvent; relay: string }>> {
    const since = kind === kinds.GiftWrap ? now() - 3 * 24 * 3600 : now() - 60
    return this.collect({ kinds: [kind], '#p': [this.pubkey], since, ...(kind === kinds.GiftWrap ? {} : { authors: [service] }) }, relays)
  }

  /** Stored events on one relay (what a reader connecting later would find). */
  async stored(filter: Filter, relay: string): Promise<NostrEvent[]> {
    return this.pool.fetchEvents([filter], { relays: [relay], timeoutMs: 5_000 })
  }

  decryptRpc(service: string, event: NostrEvent): RpcResponse {
    const response = parseRpcResponse(this.identity.nip44Decrypt(service, event.content))
    assert.ok(response !== null, 'a well-formed JSON-RPC response')
    return response
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}

export function now(): number {
  return Math.floor(Date.now() / 1000)
}

export function tagValue(event: { tags: string[][] }, name: string): string | undefined {
  return event.tags.find((t) => t[0] === name)?.[1]
}

/** Waits for the reply e-tagged to `requestId` in a collector. */
export async function replyTo<T extends { event: NostrEvent }>(c: Collector<T>, requestId: string, open?: (e: NostrEvent) => string | undefined): Promise<T> {
  let found: T | undefined
  await until(() => {
    found = c.items.find((i) => (open === undefined ? tagValue(i.event, 'e') : open(i.event)) === requestId)
    return found !== undefined
  }, `the reply to ${requestId.slice(0, 8)}`)
  return found as T
}

/** The service's trust options in dev mode: the simulator root, any PCRs, t=dev. */
export function devTrust(rootDer: Uint8Array): { root: Uint8Array; anyPcrs: true; expect: 'dev' } {
  return { root: rootDer, anyPcrs: true, expect: 'dev' }
}

/** Verifies a signed carrier's tee_root and that it is the service's own. */
export async function assertCarrier(event: NostrEvent, service: string, rootDer: Uint8Array): Promise<VerifyResult> {
  assert.equal(event.pubkey, service, 'signed by the service')
  const result = await verifyTeeRoot(event, devTrust(rootDer))
  assert.equal(result.valid, true, `tee_root verifies: ${result.reason} ${JSON.stringify(result.checks.filter((c) => !c.ok))}`)
  assert.equal(result.event?.pubkey, service, 'the root event is the service key')
  return result
}

/** For a NIP-17 reply: seal signer == rumor pubkey == root pubkey == service, tee_root valid. */
export async function assertRumor(u: Unwrapped, service: string, rootDer: Uint8Array): Promise<VerifyResult> {
  assert.equal(u.seal.pubkey, service, 'the seal is signed by the service')
  assert.equal(u.rumor.pubkey, u.seal.pubkey, 'rumor pubkey == seal signer')
  assert.equal(u.rumor.kind, kinds.PrivateDirectMessage)
  const result = await verifyTeeRoot(u.rumor, { ...devTrust(rootDer), sealSigner: u.seal.pubkey })
  assert.equal(result.valid, true, `rumor tee_root verifies: ${result.reason} ${JSON.stringify(result.checks.filter((c) => !c.ok))}`)
  assert.equal(result.event?.pubkey, service, 'root pubkey == seal signer')
  return result
}
