// The embedded relay, driven over a raw websocket so every frame it sends is visible.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { WebSocket } from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, type Event as NostrEvent } from 'nostr-tools/pure'
import { makeAuthEvent } from 'nostr-tools/nip42'
import { startEmbeddedRelay, type EmbeddedRelay } from '../src/embedded/relay.js'
import { createLogger } from '../src/log.js'
import { alterHex } from './forge.js'

const quiet = createLogger({}, { level: 'error' })
const SAFETY_MS = 5_000

type Msg = unknown[]

interface RawClient {
  challenge: string
  send(msg: unknown): void
  sendRaw(data: string | Buffer, binary?: boolean): void
  /** the next message (in arrival order) matching `pred`, consumed from the inbox */
  next(pred: (m: Msg) => boolean, what: string): Promise<Msg>
  /** every message already received matching `pred`, consumed */
  drain(pred: (m: Msg) => boolean): Msg[]
  closed: Promise<void>
  close(): void
}

async function rawClient(url: string): Promise<RawClient> {
  const ws = new WebSocket(url)
  const inbox: Msg[] = []
  const waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void }> = []
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as Msg
    const i = waiters.findIndex((w) => w.pred(m))
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m)
    else inbox.push(m)
  })
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const next = (pred: (m: Msg) => boolean, what: string): Promise<Msg> => {
    const i = inbox.findIndex(pred)
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]!)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${SAFETY_MS} ms`)), SAFETY_MS)
      waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m)
        },
      })
    })
  }
  const drain = (pred: (m: Msg) => boolean): Msg[] => {
    const taken = inbox.filter(pred)
    for (const m of taken) inbox.splice(inbox.indexOf(m), 1)
    return taken
  }
  // The embedded relay always offers NIP-42: the challenge is its first message.
  const auth = await next((m) => m[0] === 'AUTH', 'AUTH challenge')
  return {
    challenge: String(auth[1]),
    send: (msg) => ws.send(JSON.stringify(msg)),
    sendRaw: (data, binary = false) => ws.send(data, { binary }),
    next,
    drain,
    closed,
    close: () => ws.close(),
  }
}

const ok = (id: string) => (m: Msg) => m[0] === 'OK' && m[1] === id
const eose = (sub: string) => (m: Msg) => m[0] === 'EOSE' && m[1] === sub
const closedMsg = (sub: string) => (m: Msg) => m[0] === 'CLOSED' && m[1] === sub
const eventFor = (sub: string) => (m: Msg) => m[0] === 'EVENT' && m[1] === sub

function note(sk: Uint8Array, content: string, tags: string[][] = [], kind = 1): NostrEvent {
  return finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content }, sk)
}

async function publish(c: RawClient, ev: NostrEvent): Promise<{ accepted: boolean; message: string }> {
  c.send(['EVENT', ev])
  const m = await c.next(ok(ev.id), `OK for ${ev.id}`)
  return { accepted: m[2] === true, message: String(m[3]) }
}

async function authenticate(c: RawClient, url: string, sk: Uint8Array): Promise<{ accepted: boolean; message: string }> {
  const ev = finalizeEvent(makeAuthEvent(url, c.challenge), sk)
  c.send(['AUTH', ev])
  const m = await c.next(ok(ev.id), 'OK for AUTH')
  return { accepted: m[2] === true, message: String(m[3]) }
}

/** Stored events answering a REQ, up to its EOSE. */
async function query(c: RawClient, subId: string, ...filters: object[]): Promise<NostrEvent[]> {
  c.send(['REQ', subId, ...filters])
  await c.next(eose(subId), `EOSE for ${subId}`)
  // Stored events all come before EOSE, so they are in the inbox by now.
  return c.drain(eventFor(subId)).map((m) => m[2] as NostrEvent)
}

async function withRelay(opts: Parameters<typeof startEmbeddedRelay>[0], fn: (r: EmbeddedRelay) => Promise<void>): Promise<void> {
  const relay = await startEmbeddedRelay({ logger: quiet, ...opts })
  try {
    await fn(relay)
  } finally {
    await relay.close()
  }
}

function getInfo(relay: EmbeddedRelay, accept: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`http://127.0.0.1:${relay.port}/`, { headers: { Accept: accept } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('publish, read back by id, and receive live events', async () => {
  await withRelay({}, async (relay) => {
    const sk = generateSecretKey()
    const a = await rawClient(relay.url)
    const b = await rawClient(relay.url)
    const first = note(sk, 'stored')
    assert.deepEqual(await publish(a, first), { accepted: true, message: '' })

    const stored = await query(b, 'q1', { ids: [first.id] })
    assert.deepEqual(
      stored.map((e) => e.id),
      [first.id],
    )
    assert.equal(stored[0]!.content, 'stored')

    b.send(['REQ', 'live', { kinds: [1], authors: [getPublicKey(sk)], since: first.created_at }])
    await b.next(eose('live'), 'EOSE for live')
    // The stored one came before EOSE; drop it so only the live one is left to match.
    assert.equal(b.drain(eventFor('live')).length, 1)
    const second = note(sk, 'live')
    assert.equal((await publish(a, second)).accepted, true)
    const live = await b.next(eventFor('live'), 'live event')
    assert.equal((live[2] as NostrEvent).id, second.id)

    // Publishing the same event again is acknowledged as a duplicate.
    const again = await publish(a, first)
    assert.equal(again.accepted, true)
    assert.match(again.message, /^duplicate:/)
    a.close()
    b.close()
  })
})

test('NIP-11 document on the same port for Accept: application/nostr+json', async () => {
  await withRelay({ maxMessageLength: 4096, requireAuth: true }, async (relay) => {
    const info = await getInfo(relay, 'application/nostr+json')
    assert.equal(info.status, 200)
    assert.match(info.type, /application\/nostr\+json/)
    const doc = JSON.parse(info.body) as { supported_nips: number[]; limitation: Record<string, unknown> }
    for (const nip of [1, 11, 42, 70]) assert.ok(doc.supported_nips.includes(nip), `NIP-${nip} listed`)
    assert.equal(doc.limitation.max_message_length, 4096)
    assert.equal(doc.limitation.restricted_writes, true)

    const plain = await getInfo(relay, 'text/html')
    assert.equal(plain.status, 200)
    assert.doesNotMatch(plain.type, /nostr\+json/)
  })
})

test('live events respect tag filters (core alone would deliver them all)', async () => {
  await withRelay({}, async (relay) => {
    const sk = generateSecretKey()
    const alice = getPublicKey(generateSecretKey())
    const bob = getPublicKey(generateSecretKey())
    const pub = await rawClient(relay.url)
    const sub = await rawClient(relay.url)
    sub.send(['REQ', 'to-alice', { '#p': [alice] }])
    await sub.next(eose('to-alice'), 'EOSE')

    const toBob = note(sk, 'for bob', [['p', bob]])
    const toAlice = note(sk, 'for alice', [['p', alice]])
    assert.equal((await publish(pub, toBob)).accepted, true)
    assert.equal((await publish(pub, toAlice)).accepted, true)
    // toBob was broadcast (if at all) before toAlice, so the first event seen decides.
    const first = await sub.next(eventFor('to-alice'), 'event for alice')
    assert.equal((first[2] as NostrEvent).id, toAlice.id)
    pub.close()
    sub.close()
  })
})

test('NIP-70: a protected event is accepted only from its authenticated author', async () => {
  await withRelay({}, async (relay) => {
    const author = generateSecretKey()
    const other = generateSecretKey()
    const c = await rawClient(relay.url)
    const ev = note(author, 'protected', [['-']])

    const anon = await publish(c, ev)
    assert.equal(anon.accepted, false)
    assert.match(anon.message, /^auth-required:/)

    const wrong = await rawClient(relay.url)
    assert.equal((await authenticate(wrong, relay.url, other)).accepted, true)
    const byOther = await publish(wrong, ev)
    assert.equal(byOther.accepted, false)
    assert.match(byOther.message, /^restricted:/)

    assert.equal((await authenticate(c, relay.url, author)).accepted, true)
    assert.equal((await publish(c, ev)).accepted, true)
    // Unprotected events need no AUTH on an open relay.
    const anonClient = await rawClient(relay.url)
    assert.equal((await publish(anonClient, note(other, 'open'))).accepted, true)
    for (const x of [c, wrong, anonClient]) x.close()
  })
})

test('AUTH with a wrong challenge or relay host is refused', async () => {
  await withRelay({}, async (relay) => {
    const sk = generateSecretKey()
    const c = await rawClient(relay.url)
    const badChallenge = finalizeEvent(makeAuthEvent(relay.url, 'not-the-challenge'), sk)
    c.send(['AUTH', badChallenge])
    const m1 = await c.next(ok(badChallenge.id), 'OK for bad AUTH')
    assert.equal(m1[2], false)
    const badHost = finalizeEvent(makeAuthEvent('wss://elsewhere.example/', c.challenge), sk)
    c.send(['AUTH', badHost])
    const m2 = await c.next(ok(badHost.id), 'OK for bad AUTH')
    assert.equal(m2[2], false)
    // Still unauthenticated: a protected event is refused.
    assert.match((await publish(c, note(sk, 'p', [['-']]))).message, /^auth-required:/)
    c.close()
  })
})

test('requireAuth: writes and DM reads need AUTH; DMs reach only their parties', async () => {
  await withRelay({ requireAuth: true }, async (relay) => {
    const me = generateSecretKey()
    const mePk = getPublicKey(me)
    const someone = getPublicKey(generateSecretKey())
    const wrapper = generateSecretKey()
    const c = await rawClient(relay.url)

    const refused = await publish(c, note(me, 'hello'))
    assert.equal(refused.accepted, false)
    assert.match(refused.message, /^auth-required:/)
    c.send(['REQ', 'dms', { kinds: [1059], '#p': [mePk] }])
    const closed = await c.next(closedMsg('dms'), 'CLOSED for unauthenticated DM REQ')
    assert.match(String(closed[2]), /^auth-required:/)

    assert.equal((await authenticate(c, relay.url, me)).accepted, true)
    const wrapToMe = note(wrapper, 'sealed', [['p', mePk]], 1059)
    const wrapToOther = note(wrapper, 'sealed', [['p', someone]], 1059)
    assert.equal((await publish(c, wrapToMe)).accepted, true)
    assert.equal((await publish(c, wrapToOther)).accepted, true)

    const mine = await query(c, 'mine', { kinds: [1059] })
    assert.deepEqual(
      mine.map((e) => e.id),
      [wrapToMe.id],
    )

    // A reader without AUTH and without a kinds filter gets no gift wrap at all.
    const anon = await rawClient(relay.url)
    const seen = await query(anon, 'all', { authors: [getPublicKey(wrapper)] })
    assert.deepEqual(seen, [])
    c.close()
    anon.close()
  })
})

test('maxMessageLength: larger messages are refused, smaller accepted', async () => {
  await withRelay({ maxMessageLength: 1024 }, async (relay) => {
    const sk = generateSecretKey()
    const c = await rawClient(relay.url)
    const big = note(sk, 'x'.repeat(2000))
    const r = await publish(c, big)
    assert.equal(r.accepted, false)
    assert.match(r.message, /too large/)
    assert.equal((await publish(c, note(sk, 'small'))).accepted, true)
    assert.deepEqual(await query(c, 'big', { ids: [big.id] }), [])
    c.close()
  })
})

test('malformed input gets an error answer and the relay keeps serving', async () => {
  await withRelay({}, async (relay) => {
    const sk = generateSecretKey()
    const c = await rawClient(relay.url)
    const isNotice = (m: Msg) => m[0] === 'NOTICE'
    c.sendRaw('not json')
    assert.match(String((await c.next(isNotice, 'NOTICE'))[1]), /^invalid:/)
    c.sendRaw('{"an":"object"}')
    assert.match(String((await c.next(isNotice, 'NOTICE'))[1]), /^invalid:/)
    c.sendRaw(Buffer.from([1, 2, 3]), true)
    assert.match(String((await c.next(isNotice, 'NOTICE'))[1]), /binary/)

    const good = note(sk, 'fine')
    const tampered = { ...good, content: 'changed' }
    c.send(['EVENT', tampered])
    const bad = await c.next(ok(good.id), 'OK for tampered event')
    assert.equal(bad[2], false)
    assert.match(String(bad[3]), /^invalid:/)
    c.send(['EVENT', { ...good, tags: 'nope' }])
    assert.equal((await c.next(ok(good.id), 'OK for bad tags'))[2], false)

    c.send(['REQ', 'bad', { kinds: ['1'] }])
    assert.match(String((await c.next(closedMsg('bad'), 'CLOSED'))[2]), /^invalid:/)
    c.send(['REQ', 'search', { search: '"' }])
    assert.match(String((await c.next(closedMsg('search'), 'CLOSED'))[2]), /^invalid:/)

    assert.equal((await publish(c, good)).accepted, true)
    assert.equal((await query(c, 'after', { ids: [good.id] })).length, 1)
    c.close()
  })
})

test('ids and signatures are checked (by the service\'s code): a wrong id, a right id with a wrong signature and an expired event are refused', async () => {
  await withRelay({}, async (relay) => {
    const sk = generateSecretKey()
    const c = await rawClient(relay.url)
    const good = note(sk, 'signed')
    const otherKey = note(generateSecretKey(), 'signed')
    // same id (the id covers the pubkey, so keep it): a signature made by another key over another id
    c.send(['EVENT', { ...good, sig: otherKey.sig }])
    const stolen = await c.next(ok(good.id), 'OK for a signature from another event')
    assert.deepEqual(stolen.slice(2), [false, 'invalid: signature is wrong'])
    c.send(['EVENT', { ...good, content: 'not what was signed' }])
    assert.deepEqual((await c.next(ok(good.id), 'OK for a wrong id')).slice(2), [false, 'invalid: id is wrong'])
    c.send(['EVENT', { ...good, sig: alterHex(good.sig) }])
    assert.deepEqual((await c.next(ok(good.id), 'OK for an altered signature')).slice(2), [false, 'invalid: signature is wrong'])
    const expired = finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000) - 10, tags: [['expiration', String(Math.floor(Date.now() / 1000) - 5)]], content: 'old' }, sk)
    c.send(['EVENT', expired])
    assert.deepEqual((await c.next(ok(expired.id), 'OK for an expired event')).slice(2), [false, 'reject: event is expired'])
    assert.equal((await publish(c, good)).accepted, true)
    assert.equal((await query(c, 'stored', { ids: [good.id, expired.id] })).length, 1)
    c.close()
  })
})

test('queries of more shapes than the relay keeps prepared still answer exactly', async () => {
  await withRelay({}, async (relay) => {
    const sk = generateSecretKey()
    const c = await rawClient(relay.url)
    const stored = [note(sk, 'one'), note(sk, 'two')]
    for (const e of stored) assert.equal((await publish(c, e)).accepted, true)
    const wanted = stored.map((e) => e.id).sort()
    // each ids list of a new length is a new SQL text ("in (?, ?, …)"): 300 of them go past the 256 kept
    for (let n = 2; n <= 301; n++) {
      const ids = [...wanted, ...Array.from({ length: n - 2 }, () => randomBytes(32).toString('hex'))]
      const got = (await query(c, 'shape', { ids })).map((e) => e.id).sort()
      assert.deepEqual(got, wanted, `ids list of ${n}`)
    }
    // and the first shapes again, their statements long dropped
    assert.deepEqual((await query(c, 'again', { ids: [stored[0]!.id] })).map((e) => e.content), ['one'])
    c.close()
  })
})

test('stop and restart on the same port with the same database file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nec01-relay-'))
  try {
    const dbPath = join(dir, 'relay.sqlite')
    const sk = generateSecretKey()
    const ev = note(sk, 'survives a restart')
    const first = await startEmbeddedRelay({ dbPath, logger: quiet })
    const c1 = await rawClient(first.url)
    assert.equal((await publish(c1, ev)).accepted, true)
    await first.close()
    await c1.closed

    const second = await startEmbeddedRelay({ dbPath, port: first.port, logger: quiet })
    try {
      assert.equal(second.url, first.url)
      const c2 = await rawClient(second.url)
      const found = await query(c2, 'q', { ids: [ev.id] })
      assert.equal(found[0]?.content, 'survives a restart')
      c2.close()
    } finally {
      await second.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('close() disconnects clients and can be called twice', async () => {
  const relay = await startEmbeddedRelay({ logger: quiet })
  const c = await rawClient(relay.url)
  assert.equal(relay.connections(), 1)
  await Promise.all([relay.close(), relay.close()])
  await c.closed
  assert.equal(relay.connections(), 0)
})
