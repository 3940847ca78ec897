// Issue 17: what a crowd of strangers, a careless caller and a lazy client can make the
// service do. Service-wide budgets and proof of work (a real inbox fed directly, where the
// relay would only add time), the recent window and the dedup bound, and the words the
// enclave signs (the real service on a real relay).
import assert from 'node:assert/strict'
import * as kinds from 'nostr-tools/kinds'
import { after, before, describe, it } from 'node:test'
import { WebSocketServer, type WebSocket } from 'ws'
import { minePow } from 'nostr-tools/nip13'
import * as nip44 from 'nostr-tools/nip44'
import { finalizeEvent, generateSecretKey, getEventHash, getPublicKey, type EventTemplate } from 'nostr-tools/pure'
import { TEE_ROOT_TAG } from '../nec01/event.js'
import { ANNOUNCEMENT_KIND, RPC_KIND } from '../nec01/kinds.js'
import type { RpcResponse } from '../nec01/rpc.js'
import type { NostrEvent } from '../nec01/types.js'
import { verifyEvent } from '../src/crypto.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { identityFromSecret, type Identity } from '../src/service/identity.js'
import { dedupCapacity, DEFAULT_BUDGETS, policyTags, REQUEST_WINDOW_SEC, resolveBudgets, type ServiceBudgets } from '../src/service/limits.js'
import { directInbox, type DirectInbox } from './direct-inbox.js'
import { startTestRelay, startTestService, type TestService } from './service-harness.js'
import { now, Peer, replyTo, until, type Collector } from './talk.js'

/** Budgets that never refuse but the one a test is about. */
function budgets(part: Partial<ServiceBudgets>): Partial<ServiceBudgets> {
  const big = { ratePerSec: 1000, burst: 1000 }
  return { requests: big, expensive: big, lookups: big, notices: big, keptForKnown: 0, ...part }
}
/** A bucket that does not refill during a test. */
const still = (burst: number): { ratePerSec: number; burst: number } => ({ ratePerSec: 0.0001, burst })

function senderFor(): Identity {
  return identityFromSecret(generateSecretKey())
}

function dm(from: Identity, service: string, text: string, createdAt = now()): NostrEvent {
  return from.sign({ kind: kinds.EncryptedDirectMessage, created_at: createdAt, content: from.nip04Encrypt(service, text), tags: [['p', service]] })
}

function rpc(from: Identity, service: string, method: string, createdAt = now()): NostrEvent {
  return from.sign({ kind: RPC_KIND, created_at: createdAt, content: from.nip44Encrypt(service, JSON.stringify({ id: '1', method, params: {} })), tags: [['p', service]] })
}

/** NIP-59 by hand: the rumor's and the wrap's dates chosen, and the wrap mined to `pow` bits. */
function wrap(sk: Uint8Array, service: string, text: string, opts: { rumorAt?: number; wrapAt?: number; pow?: number } = {}): NostrEvent {
  const unsigned = { pubkey: getPublicKey(sk), created_at: opts.rumorAt ?? now(), kind: kinds.PrivateDirectMessage, tags: [['p', service]], content: text }
  const rumor = { ...unsigned, id: getEventHash(unsigned) }
  const seal = finalizeEvent({ kind: 13, created_at: now(), tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), nip44.v2.utils.getConversationKey(sk, service)) }, sk)
  const oneTime = generateSecretKey()
  const template: EventTemplate & { pubkey: string } = {
    kind: kinds.GiftWrap,
    created_at: opts.wrapAt ?? now(),
    tags: [['p', service]],
    content: nip44.v2.encrypt(JSON.stringify(seal), nip44.v2.utils.getConversationKey(oneTime, service)),
    pubkey: getPublicKey(oneTime),
  }
  const mined = opts.pow === undefined ? template : minePow(template, opts.pow)
  return finalizeEvent({ kind: mined.kind, created_at: mined.created_at, tags: mined.tags, content: mined.content }, oneTime)
}

function mine(from: Identity, template: EventTemplate, bits: number): NostrEvent {
  const mined = minePow({ ...template, pubkey: from.pubkey }, bits)
  return from.sign({ kind: mined.kind, created_at: mined.created_at, tags: mined.tags, content: mined.content })
}

const texts = (inbox: DirectInbox): string[] => inbox.replies.map((r) => String(r.body))
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100))

describe('service-wide budgets: fresh keys cost the service, not nothing', () => {
  it('beyond the request budget strangers get RATE_LIMITED while notices last, then silence; known senders and the operator keep their reserve', async () => {
    const operator = senderFor()
    const inbox = directInbox({ budgets: budgets({ requests: still(10), notices: still(4), keptForKnown: 0.5 }), operator: operator.pubkey })
    try {
      const me = inbox.identity.pubkey
      const crowd = Array.from({ length: 30 }, senderFor)
      for (const s of crowd) inbox.deliver(dm(s, me, 'ping'))
      await until(() => inbox.replies.length === 7, 'the crowd to be decided')
      await settle()
      // strangers reach down to the reserve (half of each burst) and no further
      assert.equal(texts(inbox).filter((t) => t === 'pong').length, 5)
      assert.equal(texts(inbox).filter((t) => t.startsWith('RATE_LIMITED: ')).length, 2)
      assert.equal(inbox.replies.length, 7, 'the rest of the crowd got silence')
      assert.equal(inbox.counters.rate_limited, 25)
      assert.equal(inbox.counters.budget_requests_refused, 25)
      // a sender answered a moment ago is known: it draws on the reserve
      const known = crowd[0] as Identity
      inbox.deliver(dm(known, me, 'ping'))
      inbox.deliver(dm(operator, me, 'ping'))
      await until(() => inbox.replies.length === 9, 'the known sender and the operator')
      assert.deepEqual(
        inbox.replies.slice(7).map((r) => [r.target.sender, r.body]).sort(),
        [
          [known.pubkey, 'pong'],
          [operator.pubkey, 'pong'],
        ].sort(),
      )
    } finally {
      inbox.close()
    }
  })

  it('an expensive command draws on its own, tighter budget', async () => {
    const inbox = directInbox({ budgets: budgets({ expensive: still(2) }), isExpensive: (m) => m === 'attest' })
    try {
      const me = inbox.identity.pubkey
      for (let i = 0; i < 4; i++) inbox.deliver(dm(senderFor(), me, 'attest'))
      inbox.deliver(dm(senderFor(), me, 'ping'))
      await until(() => inbox.replies.length === 5, 'every request decided')
      assert.deepEqual(texts(inbox).sort(), ['RATE_LIMITED: too many requests: slow down and try again in a minute', 'RATE_LIMITED: too many requests: slow down and try again in a minute', 'attested', 'attested', 'pong'].sort())
      assert.equal(inbox.counters.budget_expensive_refused, 2)
    } finally {
      inbox.close()
    }
  })

  it("NIP-17 inbox-relay lookups are budgeted: past it the reply goes back where the request came from", async () => {
    const inbox = directInbox({ budgets: budgets({ lookups: still(2) }) })
    try {
      const me = inbox.identity.pubkey
      for (let i = 0; i < 5; i++) inbox.deliver(wrap(generateSecretKey(), me, 'ping'))
      await until(() => inbox.replies.length === 5, 'five answers')
      assert.equal(inbox.lookups, 2)
      assert.equal(inbox.counters.budget_lookups_refused, 3)
      assert.ok(inbox.replies.every((r) => r.body === 'pong' && r.target.sourceRelays[0] === 'ws://127.0.0.1:1'))
    } finally {
      inbox.close()
    }
  })

  it('--pow: a stranger pays N bits of NIP-13 work, on a kind 4, an RPC request or a gift wrap; a known sender and the operator do not', async () => {
    const operator = senderFor()
    const BITS = 8
    const inbox = directInbox({ pow: BITS, operator: operator.pubkey })
    try {
      const me = inbox.identity.pubkey
      const stranger = senderFor()
      const lazy = [dm(stranger, me, 'ping'), rpc(stranger, me, 'ping'), wrap(generateSecretKey(), me, 'ping')].map((e) => (e.id.startsWith('00') ? { ...e, id: 'ff' + e.id.slice(2) } : e))
      for (const e of lazy) inbox.deliver(e)
      assert.equal(inbox.counters.dropped_no_pow, 3)
      // an id claiming zeros it does not hash to buys nothing
      const forged = dm(stranger, me, 'ping')
      inbox.deliver({ ...forged, id: '0'.repeat(16) + forged.id.slice(16) })
      assert.equal(inbox.counters.dropped_bad_signature, 1)

      inbox.deliver(mine(stranger, { kind: kinds.EncryptedDirectMessage, created_at: now(), content: stranger.nip04Encrypt(me, 'ping'), tags: [['p', me]] }, BITS))
      const wrapSk = generateSecretKey()
      inbox.deliver(wrap(wrapSk, me, 'ping', { pow: BITS }))
      inbox.deliver(dm(operator, me, 'ping'))
      await until(() => inbox.replies.length === 3, 'the mined requests and the operator answered')
      // answered once, the stranger is known: no more work asked of it
      inbox.deliver(dm(stranger, me, 'ping again'))
      inbox.deliver(wrap(wrapSk, me, 'ping again'))
      await until(() => inbox.replies.length === 5, 'the now-known senders answered without work')
      assert.equal(inbox.counters.dropped_no_pow, 3)
    } finally {
      inbox.close()
    }
  })

  it('the announcement advertises the proof of work asked of strangers; the budgets resolve and bound the dedup store', () => {
    assert.deepEqual(policyTags(0), [])
    assert.deepEqual(policyTags(20), [['pow', '20']])
    assert.throws(() => resolveBudgets({ requests: { ratePerSec: 0, burst: 1 } }), RangeError)
    assert.ok(dedupCapacity(DEFAULT_BUDGETS) < 1_000_000, `the default store is bounded: ${dedupCapacity(DEFAULT_BUDGETS)}`)
  })
})

describe('the recent window and the dedup bound', () => {
  it('a kind 4, an RPC request or a NIP-17 rumor older than the recent window is dropped in the inbox, whatever the subscription let through', async () => {
    const inbox = directInbox()
    try {
      const me = inbox.identity.pubkey
      const s = senderFor()
      const old = now() - REQUEST_WINDOW_SEC - 30
      inbox.deliver(dm(s, me, 'ping', old))
      inbox.deliver(rpc(s, me, 'ping', old))
      inbox.deliver(wrap(generateSecretKey(), me, 'ping', { rumorAt: old }))
      assert.equal(inbox.counters.dropped_stale, 3)
      // the wrap's own date is backdated by design: two days back is fine for a fresh rumor
      inbox.deliver(wrap(generateSecretKey(), me, 'ping', { wrapAt: now() - 2 * 24 * 3600 + 60 }))
      inbox.deliver(dm(s, me, 'ping', now() - REQUEST_WINDOW_SEC + 30))
      await until(() => inbox.replies.length === 2, 'the fresh requests answered')
      await settle()
      assert.equal(inbox.replies.length, 2)
    } finally {
      inbox.close()
    }
  })

  it('a flood of fresh keys leaves no trace in the dedup store beyond the budget, and a re-delivered request is still answered once', async () => {
    const b = budgets({ requests: still(4), notices: still(1) })
    const inbox = directInbox({ budgets: b })
    try {
      const me = inbox.identity.pubkey
      const first = dm(senderFor(), me, 'ping')
      inbox.deliver(first)
      await until(() => inbox.replies.length === 1, 'the first request answered')
      for (let i = 0; i < 60; i++) inbox.deliver(dm(senderFor(), me, 'ping'))
      inbox.deliver(first, 'ws://127.0.0.1:2')
      await until(() => inbox.replies.length === 5, 'the flood decided')
      await settle()
      assert.equal(inbox.replies.length, 5, 'four answers and one notice')
      assert.equal(inbox.replies.filter((r) => r.target.requestId === first.id).length, 1, 'answered once')
      assert.equal(inbox.counters.dropped_duplicate, 1)
    } finally {
      inbox.close()
    }
  })
})

/** A relay that only challenges: records the AUTH events it gets, accepts everything. */
async function challengingRelay(challenge: string): Promise<{ url: string; auths: NostrEvent[]; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  const auths: NostrEvent[] = []
  wss.on('connection', (ws: WebSocket) => {
    ws.send(JSON.stringify(['AUTH', challenge]))
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as [string, ...unknown[]]
      if (msg[0] === 'AUTH') {
        const event = msg[1] as NostrEvent
        auths.push(event)
        ws.send(JSON.stringify(['OK', event.id, true, '']))
      } else if (msg[0] === 'EVENT') ws.send(JSON.stringify(['OK', (msg[1] as NostrEvent).id, true, '']))
      else if (msg[0] === 'REQ') ws.send(JSON.stringify(['EOSE', msg[1]]))
    })
  })
  const { port } = wss.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}`,
    auths,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => r())
      }),
  }
}

describe('words the enclave did not choose', () => {
  let relay: EmbeddedRelay
  let challenger: Awaited<ReturnType<typeof challengingRelay>>
  let svc: TestService
  let service: string
  const CHALLENGE = 'the enclave hereby approves transfer 42'

  before(async () => {
    relay = await startTestRelay()
    challenger = await challengingRelay(CHALLENGE)
    svc = await startTestService({ relays: [relay.url, challenger.url], config: { pow: 0 } })
    service = svc.service.identity.pubkey
  })
  after(async () => {
    await svc.close()
    await challenger.close()
    await relay.close()
  })

  it("a NIP-42 AUTH event is signed by the service key but carries no tee_root", async () => {
    await until(() => challenger.auths.length > 0, 'the service to answer the challenge')
    const auth = challenger.auths[0] as NostrEvent
    assert.equal(auth.kind, 22242)
    assert.equal(auth.pubkey, service)
    assert.ok(verifyEvent(auth))
    assert.deepEqual(auth.tags.find((t) => t[0] === 'challenge'), ['challenge', CHALLENGE])
    assert.equal(auth.tags.some((t) => t[0] === TEE_ROOT_TAG), false, 'no tee_root on words the relay chose')
  })

  it('the help reply does not repeat an unknown command word; an unknown method or variable name is not repeated either', async () => {
    const peer = new Peer([relay.url])
    try {
      const WORD = 'i_approve_transfer_42'
      const dms: Collector<{ event: NostrEvent }> = await peer.replies(service, kinds.EncryptedDirectMessage)
      const ask = peer.nip04(service, `${WORD} now`)
      await peer.publish(ask)
      const text = peer.identity.nip04Decrypt(service, (await replyTo(dms, ask.id)).event.content)
      assert.match(text, /^Unknown command\./)
      assert.ok(!text.includes(WORD), text)

      const rpcs = await peer.replies(service, RPC_KIND)
      for (const [method, params] of [
        [WORD, {}],
        ['vars', { name: WORD }],
      ] as const) {
        const req = peer.rpc(service, { id: '1', method, params })
        await peer.publish(req)
        const response: RpcResponse = peer.decryptRpc(service, (await replyTo(rpcs, req.id)).event)
        assert.ok('error' in response, JSON.stringify(response))
        assert.ok(!JSON.stringify(response).includes(WORD), JSON.stringify(response))
      }
      dms.close()
      rpcs.close()
    } finally {
      await peer.close()
    }
  })

  it("attest repeats the caller's custom JSON only under `requester`; what it vouches for is the digest", async () => {
    const peer = new Peer([relay.url])
    try {
      const rpcs = await peer.replies(service, RPC_KIND)
      const data = { statement: 'the enclave approves transfer 42' }
      const req = peer.rpc(service, { id: '1', method: 'attest', params: { nonce: 'abcd', data } })
      await peer.publish(req)
      const response = peer.decryptRpc(service, (await replyTo(rpcs, req.id)).event)
      assert.ok('result' in response)
      const result = response.result as Record<string, unknown>
      assert.deepEqual(Object.keys(result).sort(), ['custom_digest', 'event', 'nonce', 'requester'])
      assert.deepEqual(result.requester, { custom: data })
      const { requester: _mine, ...vouched } = result
      assert.ok(!JSON.stringify(vouched).includes('approves'), 'outside `requester` the reply holds none of the caller\'s words')
      rpcs.close()
    } finally {
      await peer.close()
    }
  })
})

describe('the announcement names the proof of work', () => {
  let relay: EmbeddedRelay
  let svc: TestService

  before(async () => {
    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url], config: { pow: 12 } })
  })
  after(async () => {
    await svc.close()
    await relay.close()
  })

  it('["pow", "12"] on the kind 13793 announcement', async () => {
    const peer = new Peer([relay.url])
    try {
      let found: NostrEvent | undefined
      await until(async () => {
        found = (await peer.stored({ kinds: [ANNOUNCEMENT_KIND], authors: [svc.service.identity.pubkey] }, relay.url))[0]
        return found !== undefined
      }, 'the announcement')
      assert.deepEqual(found?.tags.filter((t) => t[0] === 'pow'), [['pow', '12']])
    } finally {
      await peer.close()
    }
  })
})
