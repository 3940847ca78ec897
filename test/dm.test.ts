// Direct messages end to end: a real relay, the service in dev mode, and a client key that
// speaks NIP-17 (gift wrap → seal → kind 14) and NIP-04 (kind 4). Every reply's tee_root
// is verified against the simulator's root; NIP-17 replies also by who signed the seal.
import * as kinds from 'nostr-tools/kinds'
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { canonicalJson } from '../nec01/canonical.js'
import { verifyRootEvent } from '../nec01/event.js'
import type { NostrEvent } from '../nec01/types.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'

import { startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'
import { assertCarrier, assertRumor, devTrust, now, Peer, replyTo, stable, tagValue, unwrapWithSeal, until, type Collector, type Unwrapped } from './talk.js'

type Item = { event: NostrEvent; relay: string }

/** Sends a NIP-17 DM and returns the unwrapped reply to it. */
async function askNip17(peer: Peer, service: string, text: string, inbox: Collector<Item>): Promise<{ request: string; reply: Unwrapped }> {
  const { wrap, rumor } = peer.nip17(service, text)
  await peer.publish(wrap)
  const item = await replyTo(inbox, rumor.id, (e) => tagValue(unwrapWithSeal(e, peer.sk).rumor, 'e'))
  return { request: rumor.id, reply: unwrapWithSeal(item.event, peer.sk) }
}

describe('NIP-17 and NIP-04 on one relay', () => {
  let relay: EmbeddedRelay
  let svc: TestService
  let peer: Peer
  let service: string
  let wraps: Collector<Item>
  let dms: Collector<Item>

  before(async () => {
    relay = await startTestRelay()
    // one peer asks everything here: the rate limit (its own test) stays out of the way
    svc = await startTestService({ relays: [relay.url], config: { rateLimit: { ratePerSec: 100, burst: 1000 } } })
    service = svc.service.identity.pubkey
    peer = new Peer([relay.url])
    wraps = await peer.replies(service, kinds.GiftWrap)
    dms = await peer.replies(service, kinds.EncryptedDirectMessage)
  })
  after(async () => {
    await peer.close()
    await svc.close()
    await relay.close()
  })

  it('answers ping over NIP-17 with a sealed kind 14 carrying tee_root, p and e', async () => {
    const { request, reply } = await askNip17(peer, service, 'ping', wraps)
    assert.equal(reply.rumor.content, 'pong')
    assert.deepEqual(reply.rumor.tags.filter((t) => t[0] === 'p'), [['p', peer.pubkey]])
    assert.deepEqual(reply.rumor.tags.filter((t) => t[0] === 'e'), [['e', request]])
    assert.equal(tagValue(reply.wrap, 'p'), peer.pubkey, 'the wrap is addressed to the sender')
    assert.notEqual(reply.wrap.pubkey, service, 'the wrap is signed by a one-time key')
    await assertRumor(reply, service, svc.rootDer)
  })

  it('answers ping over NIP-04 with a kind 4 carrying tee_root, p and e', async () => {
    const request = peer.nip04(service, 'ping')
    await peer.publish(request)
    const { event } = await replyTo(dms, request.id)
    assert.equal(event.kind, kinds.EncryptedDirectMessage)
    assert.equal(peer.identity.nip04Decrypt(service, event.content), 'pong')
    assert.equal(tagValue(event, 'p'), peer.pubkey)
    await assertCarrier(event, service, svc.rootDer)
  })

  it('info names the service, its mode, PCRs, version and relays', async () => {
    const { reply } = await askNip17(peer, service, 'info', wraps)
    const text = reply.rumor.content
    assert.match(text, new RegExp(`npub: ${svc.service.identity.npub}`))
    assert.match(text, /tee: simulated\s+t: dev\s+version: 0\.0\.0-test\s+uptime: \d+s/)
    assert.match(text, /PCR0: [0-9a-f]{96}/)
    assert.match(text, /PCR16: [0-9a-f]{96}/)
    assert.ok(text.includes(`relays: ${relay.url}`), text)
    await assertRumor(reply, service, svc.rootDer)
  })

  it('help lists every command with an example; an unknown command gets the same help', async () => {
    const { reply: help } = await askNip17(peer, service, 'help', wraps)
    for (const cmd of ['ping', 'info', 'attest', 'set', 'vars', 'help']) assert.match(help.rumor.content, new RegExp(`• ${cmd} — `))
    assert.match(help.rumor.content, /e\.g\. attest [0-9a-f]+ \{"order":42\}/)

    const { reply: unknown } = await askNip17(peer, service, 'dance please', wraps)
    // the word is the sender's: a reply under tee_root does not repeat it
    assert.match(unknown.rumor.content, /^Unknown command\./)
    assert.ok(!unknown.rumor.content.includes('dance'))
    assert.ok(unknown.rumor.content.endsWith(help.rumor.content), 'the help text follows')
    await assertRumor(unknown, service, svc.rootDer)

    // NIP-04 too: the unknown-command answer is help, not an error code
    const request = peer.nip04(service, 'HELLO')
    await peer.publish(request)
    const { event } = await replyTo(dms, request.id)
    assert.match(peer.identity.nip04Decrypt(service, event.content), /^Unknown command\.\n\nCommands/)
  })

  it('attest over NIP-17 binds the nonce and the digest of the custom JSON; the document verifies', async () => {
    const nonce = '3f9a0c1d5e'
    const data = { order: 42, items: ['b', 'a'], note: 'ünïcode' }
    const { reply } = await askNip17(peer, service, `attest ${nonce} ${JSON.stringify(data)}`, wraps)
    await assertRumor(reply, service, svc.rootDer)
    const result = JSON.parse(reply.rumor.content) as { event: NostrEvent; nonce: string; custom_digest: string; requester: { custom: unknown } }
    const digest = bytesToHex(sha256(utf8ToBytes(canonicalJson(data))))
    assert.equal(result.nonce, nonce)
    assert.equal(result.custom_digest, digest)
    assert.deepEqual(result.requester.custom, data)
    assert.equal(result.event.kind, 23793)
    const verified = await verifyRootEvent(result.event, { ...devTrust(svc.rootDer), publicKey: service, nonce, userData: digest })
    assert.equal(verified.valid, true, `${verified.reason}`)
    assert.equal(verified.attestation?.nonce, nonce)
    assert.equal(verified.attestation?.public_key, service)
    assert.equal(verified.attestation?.user_data, digest)
  })

  it('attest with text and base64 nonces: text as its UTF-8 bytes, base64 decoded', async () => {
    const { reply: text } = await askNip17(peer, service, 'attest hello-world', wraps)
    assert.equal((JSON.parse(text.rumor.content) as { nonce: string }).nonce, bytesToHex(utf8ToBytes('hello-world')))
    const { reply: b64 } = await askNip17(peer, service, 'attest AQIDBA==', wraps)
    assert.equal((JSON.parse(b64.rumor.content) as { nonce: string }).nonce, '01020304')
  })

  it('attest with custom data that is not JSON is refused with INVALID_REQUEST', async () => {
    const { reply } = await askNip17(peer, service, 'attest 00ff {"order":', wraps)
    assert.match(reply.rumor.content, /^INVALID_REQUEST: custom data is not valid JSON/)
    await assertRumor(reply, service, svc.rootDer)
    const { reply: long } = await askNip17(peer, service, `attest ${'ab'.repeat(1025)}`, wraps)
    assert.match(long.rumor.content, /^INVALID_REQUEST: nonce is 1025 bytes, at most 1024/)
  })

  it('the same rumor in two gift wraps (a client retrying) is answered once', async () => {
    const before = svc.service.counters.answered ?? 0
    const { wrap, rumor } = peer.nip17(service, 'ping')
    // a second wrap of the very same rumor: another one-time key, another event id
    const second = peer.identity.giftWrap({ kind: rumor.kind, created_at: rumor.created_at, content: rumor.content, tags: rumor.tags }, service)
    assert.equal(second.rumor.id, rumor.id)
    assert.notEqual(second.wrap.id, wrap.id)
    await peer.publish(wrap)
    await peer.publish(second.wrap)
    const { event } = await replyTo(wraps, rumor.id, (e) => tagValue(unwrapWithSeal(e, peer.sk).rumor, 'e'))
    assert.equal(unwrapWithSeal(event, peer.sk).rumor.content, 'pong')
    await until(() => (svc.service.counters.dropped_duplicate ?? 0) >= 1, 'the second wrap dropped as a duplicate')
    const answers = await stable(() => wraps.items.filter((i) => tagValue(unwrapWithSeal(i.event, peer.sk).rumor, 'e') === rumor.id).length, 'replies to the rumor', { min: 1 })
    assert.equal(answers, 1)
    // counted once the relay's OK is back, which may come after the reply reached us
    assert.equal(await stable(() => (svc.service.counters.answered ?? 0) - before, 'the answered counter', { min: 1 }), 1)
  })
})

describe('NIP-17 inbox relays (kind 10050), two relays', () => {
  let a: EmbeddedRelay
  let b: EmbeddedRelay
  let svc: TestService
  let service: string

  before(async () => {
    a = await startTestRelay()
    b = await startTestRelay()
    svc = await startTestService({ relays: [a.url, b.url] })
    service = svc.service.identity.pubkey
  })
  after(async () => {
    await svc.close()
    await a.close()
    await b.close()
  })

  /** The stored gift wraps on `relay` that answer rumor `request`. */
  async function wrapsFor(peer: Peer, request: string, relay: string): Promise<NostrEvent[]> {
    const stored = await peer.stored({ kinds: [kinds.GiftWrap], '#p': [peer.pubkey] }, relay)
    return stored.filter((e) => tagValue(unwrapWithSeal(e, peer.sk).rumor, 'e') === request)
  }

  /** A NIP-17 ping written to relay B (after a 10050 with `inboxTags` on A, if given) is answered on B only. */
  async function expectReplyOnSourceB(inboxTags: string[][] | null): Promise<void> {
    const peer = new Peer([a.url, b.url])
    try {
      if (inboxTags !== null) await peer.publish(peer.identity.sign({ kind: 10050, created_at: now(), content: '', tags: inboxTags }), [a.url])
      const { wrap, rumor } = peer.nip17(service, 'ping')
      await peer.publish(wrap, [b.url])
      await until(async () => (await wrapsFor(peer, rumor.id, b.url)).length === 1, 'the reply on the source relay B')
      assert.equal((await wrapsFor(peer, rumor.id, a.url)).length, 0)
    } finally {
      await peer.close()
    }
  }

  it("a sender with a 10050 gets the reply on its inbox relay, not on the relay it wrote to", async () => {
    const peer = new Peer([a.url, b.url])
    try {
      await peer.publish(peer.identity.sign({ kind: 10050, created_at: now(), content: '', tags: [['relay', `${b.url}/`]] }), [a.url])
      const { wrap, rumor } = peer.nip17(service, 'ping')
      await peer.publish(wrap, [a.url])
      await until(async () => (await wrapsFor(peer, rumor.id, b.url)).length === 1, 'the reply on the inbox relay B')
      const [reply] = await wrapsFor(peer, rumor.id, b.url)
      assert.ok(reply !== undefined)
      const u = unwrapWithSeal(reply, peer.sk)
      assert.equal(u.rumor.content, 'pong')
      await assertRumor(u, service, svc.rootDer)
      // One publish call went to B only; A never got a copy.
      assert.equal((await wrapsFor(peer, rumor.id, a.url)).length, 0)
    } finally {
      await peer.close()
    }
  })

  it('inbox relays the service cannot reach are skipped: the reply goes back to the source relay', async () => {
    await expectReplyOnSourceB([['relay', 'wss://inbox.not-in-the-pool.example']])
  })

  it('a sender without a 10050 gets the reply on the relay the request came from', async () => {
    await expectReplyOnSourceB(null)
  })

  it('the same request delivered by both relays gets exactly one reply (NIP-04 and NIP-17)', async () => {
    const peer = new Peer([a.url, b.url])
    try {
      const before = svc.service.counters.answered ?? 0
      const dm = peer.nip04(service, 'ping')
      const { wrap, rumor } = peer.nip17(service, 'ping')
      await peer.publish(dm) // to both relays
      await peer.publish(wrap)
      const distinct = async (): Promise<number> => {
        const ids = new Set<string>()
        for (const url of [a.url, b.url]) {
          for (const e of await peer.stored({ kinds: [kinds.EncryptedDirectMessage], authors: [service], '#e': [dm.id] }, url)) ids.add(e.id)
          for (const e of await wrapsFor(peer, rumor.id, url)) ids.add(e.id)
        }
        return ids.size
      }
      assert.equal(await stable(distinct, 'replies on both relays', { min: 2 }), 2)
      assert.equal(await stable(() => (svc.service.counters.answered ?? 0) - before, 'the answered counter', { min: 2 }), 2)
    } finally {
      await peer.close()
    }
  })
})

describe('a relay restarted mid-conversation', () => {
  it('loses no answered reply, does not answer old requests again, and answers new ones', async () => {
    const dir = tempDir('nec01-restart-')
    const dbPath = join(dir.path, 'relay.sqlite')
    let relay = await startTestRelay({ dbPath })
    const svc = await startTestService({ relays: [relay.url] })
    const service = svc.service.identity.pubkey
    const peer = new Peer([relay.url])
    try {
      const dms = await peer.replies(service, kinds.EncryptedDirectMessage)
      const wraps = await peer.replies(service, kinds.GiftWrap)
      const oldDm = peer.nip04(service, 'ping')
      await peer.publish(oldDm)
      await replyTo(dms, oldDm.id)
      const old17 = await askNip17(peer, service, 'ping', wraps)
      await until(() => svc.service.counters.answered === 2, 'both answers counted')

      const port = relay.port
      await relay.close()
      await until(() => !svc.service.health().relays[0]?.connected, 'the service to notice the relay is gone')
      relay = await startTestRelay({ dbPath, port })
      await until(() => svc.service.health().relays[0]?.connected === true, 'the service to reconnect')

      // The old requests are still stored (kind 4 within the last minute, the wrap within two
      // days) and come back with the resubscription; the new one must be answered.
      const fresh = peer.nip04(service, 'ping')
      await peer.publish(fresh)
      await replyTo(dms, fresh.id)

      const stored = async (): Promise<number> => {
        const kind4 = await peer.stored({ kinds: [kinds.EncryptedDirectMessage], authors: [service], '#e': [oldDm.id] }, relay.url)
        const gift = (await peer.stored({ kinds: [kinds.GiftWrap], '#p': [peer.pubkey] }, relay.url)).filter(
          (e) => tagValue(unwrapWithSeal(e, peer.sk).rumor, 'e') === old17.request,
        )
        return kind4.length + gift.length
      }
      assert.equal(await stable(stored, 'stored replies to the old requests', { min: 2 }), 2, 'each old request: one reply, kept across the restart')
      assert.equal(await stable(() => svc.service.counters.answered ?? 0, 'the answered counter', { min: 3 }), 3)
    } finally {
      await peer.close()
      await svc.close()
      await relay.close()
      dir.remove()
    }
  })
})
