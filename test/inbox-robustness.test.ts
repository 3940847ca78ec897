// What the inbox does with input it must not answer: each malformed request is dropped,
// counted under its own health counter, gets no reply, and the sender's next valid request
// is still answered. Over a real relay wherever a relay lets the input through; the few
// inputs no relay delivers (a bad signature: relays and the pool check it; a wrong p: the
// subscription filters it) go to a real inbox, with a real identity, through a source that
// hands it events directly.
import * as kinds from 'nostr-tools/kinds'
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { finalizeEvent, generateSecretKey, getEventHash, getPublicKey } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import type { Filter } from 'nostr-tools/filter'
import { RPC_KIND } from '../nec01/rpc.js'
import type { NostrEvent } from '../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC } from '../nec01/windows.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { createSeenStore } from '../src/service/dedup.js'
import { identityFromSecret } from '../src/service/identity.js'
import { startInbox, type InboxSource } from '../src/service/inbox.js'
import { DEDUP_TTL_SEC, MAX_FUTURE_SEC, REQUEST_WINDOW_SEC } from '../src/service/limits.js'
import { createRateLimiter } from '../src/service/ratelimit.js'
import { alterHex } from './forge.js'
import { directInbox } from './direct-inbox.js'
import { quietLogger, startTestRelay, startTestService, type TestService } from './service-harness.js'
import { assertCarrier, now, Peer, replyTo, stable, unwrapWithSeal, until, type Collector } from './talk.js'

type Item = { event: NostrEvent; relay: string }

const conversation = (sk: Uint8Array, peer: string): Uint8Array => nip44.v2.utils.getConversationKey(sk, peer)

interface RumorShape {
  id?: string
  pubkey: string
  created_at: number
  kind: number
  tags: string[][]
  content: string
}

/** NIP-59 by hand, so each layer can be made wrong on purpose. */
function handWrap(rumor: RumorShape, sealSk: Uint8Array, recipient: string): NostrEvent {
  const seal = finalizeEvent({ kind: 13, created_at: now(), tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), conversation(sealSk, recipient)) }, sealSk)
  const oneTime = generateSecretKey()
  return finalizeEvent(
    { kind: kinds.GiftWrap, created_at: now(), tags: [['p', recipient]], content: nip44.v2.encrypt(JSON.stringify(seal), conversation(oneTime, recipient)) },
    oneTime,
  )
}

function rumorFrom(pubkey: string, service: string, content = 'ping', kind = kinds.PrivateDirectMessage, p = service): RumorShape {
  const r: RumorShape = { pubkey, created_at: now(), kind, tags: [['p', p]], content }
  return { ...r, id: getEventHash(r as Parameters<typeof getEventHash>[0]) }
}

interface Case {
  name: string
  counter: string
  make(sender: Peer, service: string): NostrEvent
}

const stranger = getPublicKey(generateSecretKey())

const RELAY_CASES: Case[] = [
  {
    name: 'a kind 4 encrypted to another key (undecryptable)',
    counter: 'dropped_undecryptable',
    make: (s, service) => s.identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: now(), content: s.identity.nip04Encrypt(stranger, 'ping'), tags: [['p', service]] }),
  },
  {
    name: 'a kind 4 whose content is garbage base64',
    counter: 'dropped_undecryptable',
    make: (s, service) => s.identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: now(), content: '!!not*base64~~?iv=@@@', tags: [['p', service]] }),
  },
  {
    name: 'a kind 4 without an iv',
    counter: 'dropped_undecryptable',
    make: (s, service) => s.identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: now(), content: 'aGVsbG8gd29ybGQhISEhISE=', tags: [['p', service]] }),
  },
  {
    name: 'a gift wrap whose seal and rumor pubkeys differ',
    counter: 'dropped_undecryptable',
    // the seal is signed by the sender, the rumor claims to be from someone else
    make: (s, service) => handWrap(rumorFrom(stranger, service), s.sk, service),
  },
  {
    name: "a gift wrap whose rumor id doesn't match its content",
    counter: 'dropped_bad_rumor',
    make: (s, service) => handWrap({ ...rumorFrom(s.pubkey, service), content: 'attest' }, s.sk, service),
  },
  {
    name: 'a gift wrap whose rumor is not kind 14',
    counter: 'dropped_bad_rumor',
    make: (s, service) => handWrap(rumorFrom(s.pubkey, service, 'ping', 1), s.sk, service),
  },
  {
    name: 'a gift wrap whose rumor is addressed to someone else (wrong p)',
    counter: 'dropped_wrong_p',
    make: (s, service) => handWrap(rumorFrom(s.pubkey, service, 'ping', kinds.PrivateDirectMessage, stranger), s.sk, service),
  },
  {
    name: 'a gift wrap whose content is not NIP-44',
    counter: 'dropped_undecryptable',
    make: (_s, service) => finalizeEvent({ kind: kinds.GiftWrap, created_at: now(), tags: [['p', service]], content: 'not a payload' }, generateSecretKey()),
  },
  {
    name: 'a gift wrap whose rumor carries a past NIP-40 expiration',
    counter: 'dropped_expired',
    make: (s, service) => {
      const r: RumorShape = { pubkey: s.pubkey, created_at: now(), kind: kinds.PrivateDirectMessage, tags: [['p', service], ['expiration', String(now() - 60)]], content: 'ping' }
      return handWrap({ ...r, id: getEventHash(r as Parameters<typeof getEventHash>[0]) }, s.sk, service)
    },
  },
  { name: 'JSON-RPC that is not JSON', counter: 'dropped_invalid_rpc', make: (s, service) => s.rpc(service, '{"id":"1","method":"ping"') },
  { name: 'JSON-RPC without an id', counter: 'dropped_invalid_rpc', make: (s, service) => s.rpc(service, { method: 'ping' }) },
  { name: 'JSON-RPC with a numeric id', counter: 'dropped_invalid_rpc', make: (s, service) => s.rpc(service, { id: 7, method: 'ping' }) },
  { name: 'JSON-RPC with a method that is not a name', counter: 'dropped_invalid_rpc', make: (s, service) => s.rpc(service, { id: '1', method: 'Ping!' }) },
  { name: 'JSON-RPC that is an array', counter: 'dropped_invalid_rpc', make: (s, service) => s.rpc(service, [{ id: '1', method: 'ping' }]) },
  {
    name: 'JSON-RPC encrypted to another key',
    counter: 'dropped_undecryptable',
    make: (s, service) => s.identity.sign({ kind: RPC_KIND, created_at: now(), content: s.identity.nip44Encrypt(stranger, '{"id":"1","method":"ping"}'), tags: [['p', service]] }),
  },
  {
    name: 'a request larger than --max-request-bytes',
    counter: 'dropped_too_large',
    make: (s, service) => s.nip04(service, `ping ${'x'.repeat(8 * 1024)}`),
  },
  {
    name: 'a request with a non-numeric NIP-40 expiration',
    counter: 'dropped_expired',
    make: (s, service) => s.nip04(service, 'ping', [['expiration', 'soon']]),
  },
  {
    name: 'a request dated two hours ahead',
    counter: 'dropped_future',
    make: (s, service) => s.identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: now() + 2 * 3600, content: s.identity.nip04Encrypt(service, 'ping'), tags: [['p', service]] }),
  },
]

describe('malformed requests over a real relay', () => {
  let relay: EmbeddedRelay
  let svc: TestService
  let service: string

  before(async () => {
    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url], config: { maxRequestBytes: 8 * 1024 } })
    service = svc.service.identity.pubkey
  })
  after(async () => {
    await svc.close()
    await relay.close()
  })

  for (const c of RELAY_CASES) {
    it(`${c.name}: dropped, counted as ${c.counter}, no reply; the next request is answered`, async () => {
      const sender = new Peer([relay.url])
      try {
        const inboxes: Array<Collector<Item>> = await Promise.all([kinds.EncryptedDirectMessage, kinds.GiftWrap, RPC_KIND].map((k) => sender.replies(service, k)))
        const counter = (): number => svc.service.counters[c.counter] ?? 0
        const before = counter()
        await sender.publish(c.make(sender, service))
        await until(() => counter() === before + 1, `${c.counter} to count it`)

        const next = sender.nip04(service, 'ping')
        await sender.publish(next)
        const [dms] = inboxes as [Collector<Item>]
        const { event } = await replyTo(dms, next.id)
        assert.equal(sender.identity.nip04Decrypt(service, event.content), 'pong')
        await assertCarrier(event, service, svc.rootDer)

        const total = (): number => inboxes.reduce((n, i) => n + i.items.length, 0)
        assert.equal(await stable(total, 'replies to the sender', { min: 1 }), 1, 'the valid request got the only reply')
        assert.equal(counter(), before + 1, 'counted once')
        for (const i of inboxes) i.close()
      } finally {
        await sender.close()
      }
    })
  }

  it('health reports the counters, and the service is still healthy', async () => {
    const report = svc.service.health()
    assert.equal(report.status, 'ok')
    for (const name of ['dropped_undecryptable', 'dropped_bad_rumor', 'dropped_wrong_p', 'dropped_invalid_rpc', 'dropped_too_large', 'dropped_expired', 'dropped_future']) {
      assert.ok((report.counters[name] ?? 0) > 0, name)
    }
    const res = await fetch(`http://127.0.0.1:${svc.service.healthPort}/health`)
    const body = (await res.json()) as { counters: Record<string, number> }
    assert.equal(body.counters.dropped_bad_rumor, report.counters.dropped_bad_rumor)
    // nothing the service logged while dropping contains what the senders wrote
    assert.ok(!svc.logs.some((l) => l.includes('x'.repeat(64))), 'request bodies are not logged')
  })
})

describe('a flood over NIP-17', () => {
  let relay: EmbeddedRelay
  let svc: TestService
  let service: string

  before(async () => {
    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url], config: { rateLimit: { ratePerSec: 0.001, burst: 2 } } })
    service = svc.service.identity.pubkey
  })
  after(async () => {
    await svc.close()
    await relay.close()
  })

  it('the flooder gets its burst and one RATE_LIMITED, then silence; another sender is answered meanwhile', async () => {
    const flooder = new Peer([relay.url])
    const other = new Peer([relay.url])
    try {
      const FLOOD = 12
      const otherInbox = await other.replies(service, kinds.EncryptedDirectMessage)
      // distinct texts: the same text in the same second is the same rumor, answered once
      const wraps = Array.from({ length: FLOOD }, (_, i) => flooder.nip17(service, `ping ${i}`).wrap)
      const sending = Promise.all(wraps.map((w) => flooder.publish(w)))
      const ask = other.nip04(service, 'ping')
      await other.publish(ask)
      const { event } = await replyTo(otherInbox, ask.id)
      assert.equal(other.identity.nip04Decrypt(service, event.content), 'pong')
      await sending

      await until(() => (svc.service.counters.rate_limited ?? 0) === FLOOD - 2, 'the flood to be decided')
      const stored = async (): Promise<string[]> =>
        (await flooder.stored({ kinds: [kinds.GiftWrap], '#p': [flooder.pubkey] }, relay.url)).map((e) => unwrapWithSeal(e, flooder.sk).rumor.content)
      const count = await stable(async () => (await stored()).length, 'replies to the flooder', { min: 3 })
      assert.equal(count, 3)
      const texts = await stored()
      assert.equal(texts.filter((t) => t === 'pong').length, 2)
      assert.equal(texts.filter((t) => t.startsWith('RATE_LIMITED: ')).length, 1)
    } finally {
      await flooder.close()
      await other.close()
    }
  })
})

// ---- the inbox itself, for what no relay delivers ----

describe('the inbox, fed directly', () => {
  const sk = generateSecretKey()
  const sender = identityFromSecret(sk)

  function dm(service: string, text: string, tags: string[][] = [['p', service]], createdAt = now()): NostrEvent {
    return sender.sign({ kind: kinds.EncryptedDirectMessage, created_at: createdAt, content: sender.nip04Encrypt(service, text), tags })
  }

  const DIRECT: Array<{ name: string; counter: string; make(service: string): NostrEvent }> = [
    { name: 'a kind 4 with a tampered content (bad signature)', counter: 'dropped_bad_signature', make: (s) => ({ ...dm(s, 'ping'), content: dm(s, 'info').content }) },
    { name: 'a kind 4 with a signature from another key', counter: 'dropped_bad_signature', make: (s) => ({ ...dm(s, 'ping'), pubkey: stranger }) },
    {
      name: 'a JSON-RPC request with a bad signature',
      counter: 'dropped_bad_signature',
      make: (s) => {
        const e = sender.sign({ kind: RPC_KIND, created_at: now(), content: sender.nip44Encrypt(s, '{"id":"1","method":"ping"}'), tags: [['p', s]] })
        return { ...e, sig: alterHex(e.sig) }
      },
    },
    {
      name: 'a gift wrap with a bad outer signature',
      counter: 'dropped_bad_signature',
      make: (s) => {
        const w = sender.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: now(), content: 'ping', tags: [['p', s]] }, s).wrap
        return { ...w, created_at: w.created_at - 1 }
      },
    },
    { name: 'a request p-tagged to someone else', counter: 'dropped_wrong_p', make: (s) => dm(s, 'ping', [['p', stranger]]) },
    { name: 'a request with no p tag', counter: 'dropped_wrong_p', make: (s) => dm(s, 'ping', []) },
    { name: 'an expired request (NIP-40)', counter: 'dropped_expired', make: (s) => dm(s, 'ping', [['p', s], ['expiration', String(now() - 1)]]) },
    { name: 'a request from the future', counter: 'dropped_future', make: (s) => dm(s, 'ping', [['p', s]], now() + MAX_FUTURE_SEC + 600) },
    { name: 'a kind the service does not serve', counter: 'dropped_wrong_kind', make: (s) => sender.sign({ kind: 1, created_at: now(), content: 'ping', tags: [['p', s]] }) },
  ]

  for (const c of DIRECT) {
    it(`${c.name}: dropped and counted as ${c.counter}; the next request is answered`, async () => {
      const inbox = directInbox()
      try {
        inbox.deliver(c.make(inbox.identity.pubkey))
        assert.equal(inbox.counters[c.counter], 1)
        inbox.deliver(dm(inbox.identity.pubkey, 'ping'))
        await until(() => inbox.replies.length === 1, 'the reply to the valid request')
        assert.equal(inbox.replies[0]?.body, 'pong')
        assert.equal(inbox.counters.answered, 1)
      } finally {
        inbox.close()
      }
    })
  }

  it('a forged copy carrying a real request id does not shadow the real request', async () => {
    const inbox = directInbox()
    try {
      const real = dm(inbox.identity.pubkey, 'ping')
      inbox.deliver({ ...real, content: dm(inbox.identity.pubkey, 'info').content })
      inbox.deliver(real)
      await until(() => inbox.replies.length === 1, 'the reply to the real request')
      assert.equal(inbox.replies[0]?.target.requestId, real.id)
      assert.equal(inbox.counters.dropped_bad_signature, 1)
    } finally {
      inbox.close()
    }
  })

  it('one request delivered by three relays, and one rumor in two wraps: one reply each', async () => {
    const inbox = directInbox()
    try {
      const me = inbox.identity.pubkey
      const request = dm(me, 'ping')
      for (const relay of ['ws://a', 'ws://b', 'ws://c']) inbox.deliver(request, relay)
      const first = sender.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: now(), content: 'ping', tags: [['p', me]] }, me)
      const again = sender.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: first.rumor.created_at, content: 'ping', tags: [['p', me]] }, me)
      assert.equal(again.rumor.id, first.rumor.id)
      inbox.deliver(first.wrap)
      inbox.deliver(again.wrap)
      await until(() => inbox.replies.length === 2, 'two replies')
      assert.equal(inbox.counters.dropped_duplicate, 3)
      assert.deepEqual(inbox.replies.map((r) => r.target.requestId).sort(), [request.id, first.rumor.id].sort())
      // NIP-17 replies go back where the request came from when the sender has no 10050
      const nip17 = inbox.replies.find((r) => r.target.transport === 'nip17')
      assert.deepEqual(nip17?.target.sourceRelays, ['ws://127.0.0.1:1'])
      assert.deepEqual(nip17?.target.inboxRelays, [])
    } finally {
      inbox.close()
    }
  })

  it('an attest DM with bad JSON is refused with INVALID_REQUEST, not dropped', async () => {
    const inbox = directInbox()
    try {
      inbox.deliver(dm(inbox.identity.pubkey, 'attest 00 {"a":'))
      await until(() => inbox.replies.length === 1, 'the refusal')
      assert.match(String(inbox.replies[0]?.body), /^INVALID_REQUEST: custom data is not valid JSON/)
      assert.equal(inbox.counters.refused_invalid_request, 1)
      assert.equal(inbox.counters.errors, undefined)
    } finally {
      inbox.close()
    }
  })
})

describe('rate limiter and dedup store', () => {
  it('a token bucket per sender: burst, one notice per empty spell, refill, independent senders', () => {
    let t = 0
    const limiter = createRateLimiter({ ratePerSec: 1, burst: 2 }, { now: () => t })
    assert.deepEqual(['a', 'a', 'a', 'a', 'a'].map((s) => limiter.take(s)), ['allow', 'allow', 'refuse-notify', 'refuse-silent', 'refuse-silent'])
    assert.equal(limiter.take('b'), 'allow', 'another sender has a bucket of its own')
    t += 1000
    assert.equal(limiter.take('a'), 'allow', 'one token back after a second')
    assert.equal(limiter.take('a'), 'refuse-notify', 'a new empty spell gets its one notice')
    assert.equal(limiter.take('a'), 'refuse-silent')
  })

  it('the dedup store outlasts every accepted copy, and a full store refuses new ids instead of forgetting live ones', () => {
    assert.equal(DEDUP_TTL_SEC, REQUEST_WINDOW_SEC + MAX_FUTURE_SEC, 'as long as a request can be accepted')
    let t = 0
    const seen = createSeenStore({ now: () => t, capacity: 100 })
    assert.equal(seen.record('x'), 'new')
    assert.equal(seen.record('x'), 'seen')
    t += (DEDUP_TTL_SEC - 1) * 1000
    assert.equal(seen.record('x'), 'seen', 'still remembered just before the TTL')
    t += 2000
    assert.equal(seen.record('x'), 'new', 'forgotten after the TTL')
    const verdicts = Array.from({ length: 1000 }, (_, i) => seen.record(`id${i}`))
    assert.equal(seen.size, 100, 'bounded')
    assert.equal(verdicts.filter((v) => v === 'new').length, 99)
    assert.equal(verdicts[999], 'full', 'the newest are refused')
    assert.equal(seen.has('x'), true, 'no live id was forgotten')
    assert.equal(seen.has('id0'), true)
    assert.equal(seen.fits(1), false)
    t += DEDUP_TTL_SEC * 1000 + 1
    assert.equal(seen.fits(100), true, 'expired ids make room')
    assert.equal(seen.record('id999'), 'new')
  })
})

describe('the inbox subscription', () => {
  it('kind 4 and JSON-RPC since now − the recent window, gift wraps since now − 2 days − margin, recomputed at every (re)subscription', () => {
    let t = 1_800_000_000_000
    let filters: (() => Filter[]) | null = null
    const source: InboxSource = {
      subscribe: (f) => {
        filters = f
        return { close: () => undefined }
      },
      fetchLatest: async () => null,
    }
    const identity = identityFromSecret(generateSecretKey())
    const unused = async (): Promise<never> => {
      throw new Error('no request is delivered here')
    }
    const inbox = startInbox({ identity, source, replier: { text: unused, rpc: unused }, run: unused, log: quietLogger, counters: {}, now: () => t })
    try {
      assert.ok(filters !== null)
      const read = filters as () => Filter[]
      const expectAt = (sec: number): void => {
        const fs = read()
        const direct = fs.find((f) => f.kinds?.includes(kinds.EncryptedDirectMessage))
        const wraps = fs.find((f) => f.kinds?.includes(kinds.GiftWrap))
        assert.deepEqual(direct, { kinds: [kinds.EncryptedDirectMessage, RPC_KIND], '#p': [identity.pubkey], since: sec - REQUEST_WINDOW_SEC })
        assert.deepEqual(wraps?.kinds, [kinds.GiftWrap])
        assert.deepEqual(wraps?.['#p'], [identity.pubkey])
        const lookback = sec - (wraps?.since ?? sec)
        assert.ok(lookback > 2 * 24 * 3600, `gift wraps: more than two days back (${lookback} s)`)
        assert.ok(lookback <= GIFT_WRAP_WINDOW_SEC, 'and no further back than the window')
      }
      expectAt(t / 1000)
      t += 3_600_000 // a reconnect an hour later subscribes from the new "now"
      expectAt(t / 1000)
    } finally {
      inbox.close()
    }
  })
})
