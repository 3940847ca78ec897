// The relay pool against real embedded relays (and, for the adversarial cases, a relay that
// misbehaves on purpose and a real HTTP CONNECT proxy).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocketServer } from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, type Event as NostrEvent, type EventTemplate } from 'nostr-tools/pure'
import { startEmbeddedRelay, type EmbeddedRelay } from '../src/embedded/relay.js'
import { createRelayPool, type RelayPool, type RelayPoolOptions, type RelayStatus } from '../src/relays/pool.js'
import { createLogger } from '../src/log.js'
import { freePort } from './service-harness.js'

const quiet = createLogger({}, { level: 'error' })
const SAFETY_MS = 10_000

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + SAFETY_MS
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function note(sk: Uint8Array, content: string, tags: string[][] = [], kind = 1): NostrEvent {
  return finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content }, sk)
}

const rw = (url: string) => ({ url, read: true, write: true })

function pool(relays: string[], extra: Partial<RelayPoolOptions> = {}): RelayPool {
  return createRelayPool({ relays: relays.map(rw), logger: quiet, backoff: { initialMs: 50, maxMs: 200 }, ...extra })
}

function statusOf(p: RelayPool, url: string): RelayStatus {
  const s = p.status().find((x) => x.url === url)
  assert.ok(s, `status for ${url}`)
  return s
}

function signerFor(sk: Uint8Array, calls: EventTemplate[] = []) {
  return async (t: EventTemplate) => {
    calls.push(t)
    return finalizeEvent(t, sk)
  }
}


async function relays(n: number, opts: Parameters<typeof startEmbeddedRelay>[0] = {}): Promise<EmbeddedRelay[]> {
  return Promise.all(Array.from({ length: n }, () => startEmbeddedRelay({ logger: quiet, ...opts })))
}

test('publishes to two relays with per-relay OKs and receives from both', async () => {
  const [r1, r2] = (await relays(2)) as [EmbeddedRelay, EmbeddedRelay]
  const p = pool([r1.url, r2.url])
  try {
    const sk = generateSecretKey()
    const got: Array<{ id: string; url: string }> = []
    const eosed = new Set<string>()
    p.subscribe([{ kinds: [1], authors: [getPublicKey(sk)] }], {
      onevent: (ev, url) => got.push({ id: ev.id, url }),
      oneose: (url) => eosed.add(url),
    })
    await waitFor(() => eosed.size === 2, 'EOSE from both relays')

    const both = note(sk, 'to both')
    const report = await p.publish(both)
    assert.deepEqual(report, [
      { url: r1.url, ok: true, code: 'ok', message: '' },
      { url: r2.url, ok: true, code: 'ok', message: '' },
    ])
    const only1 = note(sk, 'only r1')
    const only2 = note(sk, 'only r2')
    assert.deepEqual(
      (await p.publish(only1, { relays: [r1.url] })).map((r) => [r.url, r.ok]),
      [[r1.url, true]],
    )
    assert.deepEqual(
      (await p.publish(only2, { relays: [r2.url + '/'] })).map((r) => [r.url, r.ok]),
      [[r2.url, true]],
    )
    await waitFor(() => got.length >= 3, 'three events')
    assert.deepEqual(got.find((g) => g.id === only1.id)?.url, r1.url)
    assert.deepEqual(got.find((g) => g.id === only2.id)?.url, r2.url)
    // The event both relays sent is delivered once.
    assert.equal(got.filter((g) => g.id === both.id).length, 1)

    const notInPool = await p.publish(note(sk, 'x'), { relays: ['wss://elsewhere.example'] })
    assert.deepEqual(notInPool.map((r) => r.code), ['not-in-pool'])
  } finally {
    await p.close()
    await Promise.all([r1.close(), r2.close()])
  }
})

test('AUTH: the pool answers a challenge through the signer, then publishes and reads DMs', async () => {
  const [relay] = (await relays(1, { requireAuth: true })) as [EmbeddedRelay]
  const sk = generateSecretKey()
  const pk = getPublicKey(sk)
  const calls: EventTemplate[] = []
  const p = pool([relay.url], { signAuth: signerFor(sk, calls) })
  try {
    await waitFor(() => statusOf(p, relay.url).authed, 'authenticated')
    assert.equal(statusOf(p, relay.url).auth_pubkey, pk)
    assert.equal(calls[0]?.kind, 22242)
    assert.ok(calls[0]?.tags.some((t) => t[0] === 'challenge'))

    const got: string[] = []
    let eose = false
    p.subscribe([{ kinds: [1059], '#p': [pk] }], { onevent: (ev) => got.push(ev.id), oneose: () => (eose = true) })
    await waitFor(() => eose, 'EOSE for the DM subscription')
    const wrap = note(generateSecretKey(), 'sealed', [['p', pk]], 1059)
    assert.deepEqual(
      (await p.publish(wrap)).map((r) => r.code),
      ['ok'],
    )
    await waitFor(() => got.includes(wrap.id), 'the gift wrap')
  } finally {
    await p.close()
    await relay.close()
  }
})

test('AUTH on demand: an auth-required refusal authenticates and retries once', async () => {
  const [relay] = (await relays(1, { requireAuth: true })) as [EmbeddedRelay]
  const sk = generateSecretKey()
  const pk = getPublicKey(sk)
  const publisher = pool([relay.url], { signAuth: signerFor(sk), authOnChallenge: false })
  const reader = pool([relay.url], { signAuth: signerFor(sk), authOnChallenge: false })
  const anonymous = pool([relay.url])
  try {
    await Promise.all([publisher.settle(), reader.settle(), anonymous.settle()])
    assert.equal(statusOf(publisher, relay.url).authed, false)

    // A subscription refused with auth-required is re-sent after AUTH.
    const got: string[] = []
    reader.subscribe([{ kinds: [1059], '#p': [pk] }], { onevent: (ev) => got.push(ev.id) })
    await waitFor(() => statusOf(reader, relay.url).authed, 'reader authenticated')

    const wrap = note(generateSecretKey(), 'sealed', [['p', pk]], 1059)
    const [result] = await publisher.publish(wrap)
    assert.equal(result?.code, 'ok', result?.message)
    assert.equal(statusOf(publisher, relay.url).authed, true)
    await waitFor(() => got.includes(wrap.id), 'the gift wrap on the re-sent subscription')

    // Without a signer the refusal is final and reported as such.
    const [refused] = await anonymous.publish(note(sk, 'hello'))
    assert.equal(refused?.code, 'rejected')
    assert.match(refused?.message ?? '', /^auth-required:/)
  } finally {
    await Promise.all([publisher.close(), reader.close(), anonymous.close()])
    await relay.close()
  }
})

test('a failing signer or a relay refusing our AUTH is reported, not fatal', async () => {
  // The relay expects AUTH events naming another host, so it refuses ours with OK false.
  const [strict] = (await relays(1, { requireAuth: true, authHostname: 'relay.example' })) as [EmbeddedRelay]
  const [open] = (await relays(1, { requireAuth: true })) as [EmbeddedRelay]
  const sk = generateSecretKey()
  const refusedPool = pool([strict.url], { signAuth: signerFor(sk) })
  const failingSigner = pool([open.url], {
    signAuth: async () => {
      throw new Error('hsm unavailable')
    },
  })
  try {
    const [r1] = await refusedPool.publish(note(sk, 'a'))
    assert.equal(r1?.code, 'auth-failed')
    assert.match(r1?.message ?? '', /relay url is wrong/)
    assert.match(statusOf(refusedPool, strict.url).last_error ?? '', /^AUTH failed:/)

    const [r2] = await failingSigner.publish(note(sk, 'b'))
    assert.equal(r2?.code, 'auth-failed')
    assert.match(r2?.message ?? '', /hsm unavailable/)
    assert.equal(statusOf(failingSigner, open.url).connected, true)
  } finally {
    await Promise.all([refusedPool.close(), failingSigner.close()])
    await Promise.all([strict.close(), open.close()])
  }
})

test('a signer that could not sign yet is asked again on the next auth-required; a relay refusal stands', async () => {
  const [open] = (await relays(1, { requireAuth: true })) as [EmbeddedRelay]
  const [strict] = (await relays(1, { requireAuth: true, authHostname: 'relay.example' })) as [EmbeddedRelay]
  const sk = generateSecretKey()
  let ready = false
  let calls = 0
  // like the service before its first attestation: it refuses to sign, then can
  const signAuth = async (template: EventTemplate): Promise<NostrEvent> => {
    calls++
    if (!ready) throw new Error('no attestation yet')
    return finalizeEvent(template, sk)
  }
  const p = pool([open.url], { signAuth, authOnChallenge: false })
  const refusedCalls: EventTemplate[] = []
  const refusing = pool([strict.url], { signAuth: signerFor(sk, refusedCalls), authOnChallenge: false })
  try {
    const [first] = await p.publish(note(sk, 'too early'))
    assert.equal(first?.code, 'auth-failed')
    ready = true
    const [second] = await p.publish(note(sk, 'now'))
    assert.equal(second?.code, 'ok', second?.message)
    assert.equal(statusOf(p, open.url).authed, true)
    assert.equal(calls, 2)

    // the relay refused our signed AUTH: no second AUTH on this connection
    const [r1] = await refusing.publish(note(sk, 'a'))
    assert.equal(r1?.code, 'auth-failed')
    const [r2] = await refusing.publish(note(sk, 'b'))
    assert.equal(r2?.code, 'auth-failed')
    assert.equal(refusedCalls.length, 1)
    assert.match(statusOf(refusing, strict.url).last_error ?? '', /^AUTH failed:/)
  } finally {
    await Promise.all([p.close(), refusing.close()])
    await Promise.all([open.close(), strict.close()])
  }
})

test('relay restart: the pool reconnects and the subscription delivers again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nec01-pool-'))
  const dbPath = join(dir, 'relay.sqlite')
  let relay = await startEmbeddedRelay({ dbPath, logger: quiet })
  const url = relay.url
  const p = pool([url])
  try {
    const sk = generateSecretKey()
    const since = Math.floor(Date.now() / 1000) - 10
    let filterCalls = 0
    const got: string[] = []
    p.subscribe(
      () => {
        filterCalls++
        return [{ kinds: [1], authors: [getPublicKey(sk)], since }]
      },
      { onevent: (ev) => got.push(ev.id) },
    )
    await waitFor(() => statusOf(p, url).subscriptions === 1, 'subscription sent')
    const before = note(sk, 'before restart')
    assert.equal((await p.publish(before))[0]?.ok, true)
    await waitFor(() => got.includes(before.id), 'event before restart')

    await relay.close()
    await waitFor(() => !statusOf(p, url).connected, 'disconnect noticed')
    const down = statusOf(p, url)
    assert.match(down.last_error ?? '', /connection lost/)
    const [whileDown] = await p.publish(note(sk, 'while down'), { timeoutMs: 200 })
    assert.equal(whileDown?.ok, false)

    relay = await startEmbeddedRelay({ dbPath, port: Number(new URL(url).port), logger: quiet })
    await waitFor(() => statusOf(p, url).connected && statusOf(p, url).subscriptions === 1, 'reconnected and resubscribed')
    assert.ok(filterCalls >= 2, `filters re-evaluated (${filterCalls} calls)`)
    const after = note(sk, 'after restart')
    assert.equal((await p.publish(after))[0]?.ok, true)
    await waitFor(() => got.includes(after.id), 'event after restart')
    assert.equal(got.filter((id) => id === before.id).length, 1, 'no duplicate delivery after resubscribe')
  } finally {
    await p.close()
    await relay.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('an unreachable relay is reported with last_error and the others keep working', async () => {
  const [relay] = (await relays(1)) as [EmbeddedRelay]
  const dead = `ws://127.0.0.1:${await freePort()}`
  const p = pool([relay.url, dead])
  try {
    await p.settle()
    const d = statusOf(p, dead)
    assert.equal(d.connected, false)
    assert.match(d.last_error ?? '', /ECONNREFUSED/)
    assert.ok(d.failures >= 1)
    assert.equal(statusOf(p, relay.url).connected, true)

    const sk = generateSecretKey()
    const got: string[] = []
    p.subscribe([{ authors: [getPublicKey(sk)] }], { onevent: (ev) => got.push(ev.id) })
    const ev = note(sk, 'still works')
    const report = await p.publish(ev)
    assert.deepEqual(
      report.map((r) => [r.url, r.code]),
      [
        [relay.url, 'ok'],
        [dead, 'not-connected'],
      ],
    )
    assert.match(report[1]?.message ?? '', /ECONNREFUSED/)
    await waitFor(() => got.includes(ev.id), 'event from the live relay')
    // It keeps retrying in the background.
    await waitFor(() => statusOf(p, dead).failures >= 2, 'a second attempt')
  } finally {
    await p.close()
    await relay.close()
  }
})

test('NIP-11 max_message_length: a too-large event is skipped for that relay only', async () => {
  const [small] = (await relays(1, { maxMessageLength: 1024 })) as [EmbeddedRelay]
  const [large] = (await relays(1)) as [EmbeddedRelay]
  const p = pool([small.url, large.url])
  try {
    const sk = generateSecretKey()
    const big = note(sk, 'x'.repeat(2000))
    const report = await p.publish(big)
    assert.deepEqual(
      report.map((r) => [r.url, r.code]),
      [
        [small.url, 'too-large'],
        [large.url, 'ok'],
      ],
    )
    assert.match(report[0]?.message ?? '', /too large.*max_message_length 1024/)
    assert.equal(statusOf(p, small.url).limits?.max_message_length, 1024)
    assert.equal(statusOf(p, small.url).connected, true, 'nothing was sent that could kill the socket')

    assert.deepEqual(await p.fetchEvents([{ ids: [big.id] }], { relays: [small.url] }), [])
    assert.deepEqual(
      (await p.fetchEvents([{ ids: [big.id] }], { relays: [large.url] })).map((e) => e.id),
      [big.id],
    )
    const fine = note(sk, 'fits')
    assert.deepEqual(
      (await p.publish(fine)).map((r) => r.code),
      ['ok', 'ok'],
    )
  } finally {
    await p.close()
    await Promise.all([small.close(), large.close()])
  }
})

test('every connection, NIP-11 included, can go through an HTTP CONNECT proxy', async () => {
  const [relay] = (await relays(1, { maxMessageLength: 4096 })) as [EmbeddedRelay]
  const targets: string[] = []
  const sockets = new Set<Socket | Duplex>()
  const proxy = createHttpServer((_req, res) => res.writeHead(405).end())
  proxy.on('connect', (req, client: Duplex, head: Buffer) => {
    const target = req.url ?? ''
    targets.push(target)
    const i = target.lastIndexOf(':')
    const upstream = netConnect(Number(target.slice(i + 1)), target.slice(0, i), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => undefined)
      s.on('close', () => sockets.delete(s))
    }
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
  const p = pool([relay.url], { proxy: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` })
  try {
    const [r] = await p.publish(note(generateSecretKey(), 'via proxy'))
    assert.equal(r?.code, 'ok', r?.message)
    assert.equal(statusOf(p, relay.url).limits?.max_message_length, 4096)
    const hostPort = `127.0.0.1:${relay.port}`
    assert.ok(targets.length >= 2, `websocket and NIP-11 tunnels (${targets.join(', ')})`)
    assert.ok(targets.every((t) => t === hostPort), targets.join(', '))
  } finally {
    await p.close()
    await relay.close()
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => proxy.close(() => r()))
  }
})

test('a hostile relay cannot crash the pool or get forged events through', async () => {
  const sk = generateSecretKey()
  const valid = note(sk, 'the real one')
  const forged = { ...note(sk, 'original'), content: 'tampered' }
  const offFilter = note(sk, 'wrong kind', [], 7)
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  wss.on('connection', (ws) => {
    for (const frame of ['garbage', '["OK"]', '{"a":1}', '["EVENT","nope",{}]', JSON.stringify(['AUTH', 'x'.repeat(5000)]), '["NOTICE",5]', '["EOSE"]', '["CLOSED",7]']) {
      ws.send(frame)
    }
    ws.send(Buffer.from([0xff, 0x00]), { binary: true })
    ws.send(JSON.stringify(['AUTH', 'challenge-1']))
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as [string, ...unknown[]]
      if (m[0] === 'REQ') {
        const sub = String(m[1])
        for (const ev of [forged, offFilter, { id: 1 }, valid]) ws.send(JSON.stringify(['EVENT', sub, ev]))
        ws.send(JSON.stringify(['EOSE', sub]))
      } else if (m[0] === 'AUTH') {
        ws.send(JSON.stringify(['OK', (m[1] as { id: string }).id, false, 'restricted: not you']))
      } else if (m[0] === 'EVENT') {
        ws.send(JSON.stringify(['OK', (m[1] as { id: string }).id, false, 'blocked: no']))
      }
    })
  })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`
  const p = pool([url], { signAuth: signerFor(generateSecretKey()) })
  try {
    const got: string[] = []
    let eose = false
    p.subscribe([{ kinds: [1] }], { onevent: (ev) => got.push(ev.id), oneose: () => (eose = true) })
    await waitFor(() => eose, 'EOSE from the hostile relay')
    assert.deepEqual(got, [valid.id])
    const [r] = await p.publish(note(sk, 'hello'))
    assert.deepEqual([r?.code, r?.message], ['rejected', 'blocked: no'])
    await waitFor(() => /^AUTH failed: restricted/.test(statusOf(p, url).last_error ?? ''), 'the refused AUTH recorded')
    assert.equal(statusOf(p, url).connected, true)
  } finally {
    await p.close()
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((r) => wss.close(() => r()))
  }
})

test('a REQ refused as restricted before AUTH is re-sent, even when the CLOSED arrives after AUTH succeeded', async () => {
  // The order a relay that handles one connection's messages concurrently can produce:
  // challenge, our REQ and AUTH cross, OK for the AUTH first, then CLOSED for the REQ it read
  // while we were unauthenticated. Giving up here would leave a service deaf to its DMs.
  const sk = generateSecretKey()
  const dm = note(generateSecretKey(), 'sealed', [['p', getPublicKey(sk)]], 1059)
  let reqs = 0
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  wss.on('connection', (ws) => {
    let authed = false
    const early: string[] = []
    ws.send(JSON.stringify(['AUTH', 'challenge-1']))
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as [string, ...unknown[]]
      if (m[0] === 'REQ') {
        reqs++
        const sub = String(m[1])
        if (!authed) {
          early.push(sub)
          return
        }
        ws.send(JSON.stringify(['EVENT', sub, dm]))
        ws.send(JSON.stringify(['EOSE', sub]))
      } else if (m[0] === 'AUTH') {
        authed = true
        ws.send(JSON.stringify(['OK', (m[1] as { id: string }).id, true, '']))
        const refused = early.splice(0)
        setTimeout(() => {
          for (const sub of refused) ws.send(JSON.stringify(['CLOSED', sub, "restricted: we can't serve DMs to unauthenticated users"]))
        }, 50)
      } else if (m[0] === 'EVENT') {
        const id = (m[1] as { id: string }).id
        ws.send(JSON.stringify(['OK', id, authed, authed ? '' : 'auth-required: publishing needs AUTH']))
      }
    })
  })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`
  const p = pool([url], { signAuth: signerFor(sk), authOnChallenge: false })
  try {
    const got: string[] = []
    p.subscribe([{ kinds: [1059], '#p': [getPublicKey(sk)] }], { onevent: (ev) => got.push(ev.id) })
    // the REQ goes out unauthenticated; AUTH happens on a publish meanwhile
    await waitFor(() => reqs === 1, 'the first REQ')
    await p.publish(note(sk, 'triggers AUTH'))
    await waitFor(() => got.includes(dm.id), 'the DM on the re-sent subscription')
    assert.equal(reqs, 2)
  } finally {
    await p.close()
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((r) => wss.close(() => r()))
  }
})

test('addRelay and removeRelay change the pool while it runs', async () => {
  const [r1, r2] = (await relays(2)) as [EmbeddedRelay, EmbeddedRelay]
  const p = pool([r1.url])
  try {
    const sk = generateSecretKey()
    const got: Array<[string, string]> = []
    p.subscribe([{ authors: [getPublicKey(sk)] }], { onevent: (ev, url) => got.push([ev.id, url]) })
    assert.equal(p.addRelay({ url: r2.url + '/', read: true, write: false }), r2.url)
    await waitFor(() => statusOf(p, r2.url).subscriptions === 1, 'the existing subscription on the new relay')
    // r2 is read-only in the pool: a default publish skips it, an explicit one reaches it.
    assert.deepEqual(
      (await p.publish(note(sk, 'default'))).map((r) => r.url),
      [r1.url],
    )
    const direct = note(sk, 'direct')
    assert.equal((await p.publish(direct, { relays: [r2.url] }))[0]?.code, 'ok')
    await waitFor(() => got.some(([id, url]) => id === direct.id && url === r2.url), 'event from the added relay')

    assert.equal(p.removeRelay(r2.url), true)
    assert.equal(p.removeRelay(r2.url), false)
    assert.deepEqual(
      p.status().map((s) => s.url),
      [r1.url],
    )
    await waitFor(() => r2.connections() === 0, 'the removed relay disconnected')
    assert.throws(() => p.addRelay({ url: 'http://nope', read: true, write: true }), /not a ws/)
  } finally {
    await p.close()
    await Promise.all([r1.close(), r2.close()])
  }
})

test('close() leaves no handles: a process using the pool exits by itself', async () => {
  // A server that accepts TCP and never answers keeps one relay in "connecting" at close time.
  const held = new Set<Socket>()
  const blackhole = createNetServer((s) => {
    held.add(s)
    s.on('error', () => undefined)
  })
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()))
  const silent = `ws://127.0.0.1:${(blackhole.address() as AddressInfo).port}`
  const dead = `ws://127.0.0.1:${await freePort()}`
  const mod = (p: string) => JSON.stringify(new URL(p, import.meta.url).href)
  // Every timeout is far longer than the safety net, so any timer left behind keeps the child
  // alive and fails the test.
  const script = `
    import { startEmbeddedRelay } from ${mod('../src/embedded/relay.js')}
    import { createRelayPool } from ${mod('../src/relays/pool.js')}
    import { createLogger } from ${mod('../src/log.js')}
    import { finalizeEvent, generateSecretKey } from ${JSON.stringify(import.meta.resolve('nostr-tools/pure'))}
    const quiet = createLogger({}, { level: 'error' })
    const relay = await startEmbeddedRelay({ logger: quiet, requireAuth: true })
    const sk = generateSecretKey()
    const long = 600000
    const pool = createRelayPool({
      relays: [${JSON.stringify(silent)}, ${JSON.stringify(dead)}, relay.url].map((url) => ({ url, read: true, write: true })),
      signAuth: async (t) => finalizeEvent(t, sk),
      logger: quiet,
      connectTimeoutMs: long, publishTimeoutMs: long, heartbeatMs: long, eoseTimeoutMs: long, nip11TimeoutMs: long,
      backoff: { initialMs: long, maxMs: long },
    })
    pool.subscribe([{ kinds: [1] }], { onevent() {} })
    const ev = (content) => finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content }, sk)
    const live = await pool.publish(ev('live'), { relays: [relay.url] })
    const stuck = pool.publish(ev('stuck'), { relays: [${JSON.stringify(silent)}] })
    await pool.close()
    await relay.close()
    console.log(JSON.stringify({ live, stuck: await stuck }))
  `
  try {
    const out = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number; signal?: string }) | null
        resolve({ code: e ? (e.code ?? 1) : 0, signal: e?.signal ?? null, stdout, stderr })
      })
    })
    assert.equal(out.signal, null, `the child had to be killed: handles left open\n${out.stderr}`)
    assert.equal(out.code, 0, out.stderr)
    const result = JSON.parse(out.stdout) as { live: Array<{ code: string }>; stuck: Array<{ code: string }> }
    assert.deepEqual(
      result.live.map((r) => r.code),
      ['ok'],
    )
    assert.deepEqual(
      result.stuck.map((r) => r.code),
      ['not-connected'],
    )
  } finally {
    for (const s of held) s.destroy()
    await new Promise<void>((r) => blackhole.close(() => r()))
  }
})
