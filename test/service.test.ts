// The service in process (dev mode, NSM simulator) against real relays on loopback: what it
// publishes and how each event verifies, t, the PCR16 requirement, the attestation's refresh
// and fail-closed paths (at boot and mid-run), a relay restart, an unreachable relay and a
// relay that refuses our event size, and the secret key never leaving the identity.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { sha256, sha384 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { nsecEncode } from 'nostr-tools/nip19'
import { verifyRootEvent, verifyTeeRoot } from '../nec01/event.js'
import type { NostrEvent, VerifyResult } from '../nec01/types.js'
import type { NsmSimulator } from '../src/nsm/simulator.js'
import { NsmError, type Nsm } from '../src/nsm/types.js'
import { createRelayPool, type RelayPool } from '../src/relays/pool.js'
import { identityFromSecret } from '../src/service/identity.js'
import { NoRootError } from '../src/service/publish.js'
import type { HealthReport } from '../src/service/health.js'
import { freePort, quietLogger, startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'

/** Upper bound for any wait: a safety net, never a measurement. */
const SAFETY_MS = 20_000
const DESCRIBING_KINDS = [0, 10050, 10002, 13793]

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = SAFETY_MS): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** A client as any Nostr app would be: its own throwaway key, answering AUTH with it. */
function reader(urls: string[], sk: Uint8Array = generateSecretKey()): RelayPool {
  return createRelayPool({
    relays: urls.map((url) => ({ url, read: true, write: true })),
    logger: quietLogger,
    signAuth: async (t) => finalizeEvent(t, sk),
    backoff: { initialMs: 50, maxMs: 200 },
  })
}

/** The simulator behind a wrapper that records every random draw and can make attest() fail. */
function recordingNsm(sim: NsmSimulator): { nsm: Nsm; draws: Uint8Array[]; failAttest: { on: boolean } } {
  const draws: Uint8Array[] = []
  const failAttest = { on: false }
  const nsm: Nsm = {
    describe: () => sim.describe(),
    extendPcr: (i, d) => sim.extendPcr(i, d),
    lockPcr: (i) => sim.lockPcr(i),
    describePcr: (i) => sim.describePcr(i),
    attest: async (req) => {
      if (failAttest.on) throw new NsmError('InternalError', 'attestation refused (test)')
      return sim.attest(req)
    },
    random: async (n) => {
      const bytes = await sim.random(n)
      draws.push(Uint8Array.from(bytes))
      return bytes
    },
    close: () => sim.close(),
  }
  return { nsm, draws, failAttest }
}

async function bootPcrs(sim: NsmSimulator): Promise<Record<number, string>> {
  const out: Record<number, string> = {}
  for (const i of [0, 1, 2]) out[i] = bytesToHex((await sim.describePcr(i)).value)
  return out
}

async function getHealth(svc: TestService): Promise<{ status: number; body: string; report: HealthReport }> {
  const res = await fetch(`http://127.0.0.1:${svc.service.healthPort}/health`)
  const body = await res.text()
  return { status: res.status, body, report: JSON.parse(body) as HealthReport }
}

function tag(event: { tags: string[][] }, name: string): string | undefined {
  return event.tags.find((t) => t[0] === name)?.[1]
}

function rootOf(event: NostrEvent): NostrEvent {
  const json = tag(event, 'tee_root')
  assert.ok(json !== undefined, `kind ${event.kind} carries tee_root`)
  return JSON.parse(json) as NostrEvent
}

/** The latest stored event of each describing kind by `author`, once all four are there. */
async function describingEvents(pool: RelayPool, author: string, relay: string): Promise<Map<number, NostrEvent>> {
  let latest = new Map<number, NostrEvent>()
  await waitFor(async () => {
    const events = await pool.fetchEvents([{ kinds: DESCRIBING_KINDS, authors: [author] }], { relays: [relay], timeoutMs: 2000 })
    latest = new Map()
    for (const e of events) if ((latest.get(e.kind)?.created_at ?? -1) < e.created_at) latest.set(e.kind, e)
    return latest.size === DESCRIBING_KINDS.length
  }, `kinds ${DESCRIBING_KINDS.join(', ')} on ${relay}`)
  return latest
}

/** The "published" log lines, parsed. */
function publishedLines(logs: string[]): Array<{ kind: number; id: string; relays: string[] }> {
  return logs.map((l) => JSON.parse(l) as { msg: string; kind: number; id: string; relays: string[] }).filter((l) => l.msg === 'published')
}


function assertValid(result: VerifyResult, what: string): void {
  assert.equal(result.valid, true, `${what}: ${result.reason ?? ''} ${result.checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')}`)
}

test('publishes profile, DM relays, relay list and announcement to an AUTH + NIP-70 relay, each with a verified tee_root', async () => {
  const relay = await startTestRelay({ requireAuth: true })
  let recorded: ReturnType<typeof recordingNsm> | undefined
  // The simulator runs 5 s behind: its leaf starts before the root event is made, so an
  // expiration computed as "now + lifetime" would differ from the leaf's notAfter.
  const svc = await startTestService({
    relays: [relay.url],
    nsm: { now: () => Date.now() - 5000 },
    wrapNsm: (sim) => (recorded = recordingNsm(sim)).nsm,
  })
  const client = reader([relay.url])
  try {
    const { pubkey, npub } = svc.service.identity
    const expectedPcrs = await bootPcrs(svc.simulator)
    const events = await describingEvents(client, pubkey, relay.url)
    const trust = { root: svc.rootDer, expectedPcrs, expect: 'dev' as const }

    const rootEvent = rootOf(events.get(13793) as NostrEvent)
    for (const [kind, event] of events) {
      assertValid(await verifyTeeRoot(event, trust), `kind ${kind}`)
      assert.equal(event.pubkey, pubkey)
      assert.ok(!event.tags.some((t) => t[0] === '-'), `kind ${kind} is a carrier: no ["-"]`)
      assert.equal(tag(event, 'tee_root'), JSON.stringify(rootEvent), `kind ${kind} carries the current root`)
    }

    // The root: NIP-70 protected, t=dev, expiration = the leaf's notAfter, PCR16 bound.
    const rootCheck = await verifyRootEvent(rootEvent, trust)
    assertValid(rootCheck, 'root event')
    const att = rootCheck.attestation
    assert.ok(att !== null)
    assert.equal(rootEvent.kind, 23793)
    assert.deepEqual(rootEvent.tags.filter((t) => t[0] === '-'), [['-']])
    assert.equal(tag(rootEvent, 't'), 'dev')
    const expiration = Number(tag(rootEvent, 'expiration'))
    assert.equal(expiration, att.certificate.notAfter, 'expiration is the leaf certificate notAfter')
    assert.ok(expiration < rootEvent.created_at + 3 * 3600, 'not "now + 3 h": the leaf began before the root was made')
    assert.equal(Buffer.from(rootEvent.content, 'base64').toString('base64'), rootEvent.content, 'content is base64')
    assert.equal(att.public_key, pubkey)
    assert.equal(att.pcr16_binds_public_key, true)
    const pcr16 = bytesToHex(sha384(new Uint8Array([...new Uint8Array(48), ...sha256(hexToBytes(pubkey))])))
    assert.equal(att.pcrs['16'], pcr16, 'PCR16 = SHA384(0^48 ‖ SHA256(pubkey))')

    // The announcement: NEC-02 shape, PCRs from the attestation, same expiration, relays.
    const ann = events.get(13793) as NostrEvent
    const expectedX = [0, 1, 2, 4, 8]
      .filter((i) => att.pcrs[String(i)] !== undefined && (i <= 2 || !/^0+$/.test(att.pcrs[String(i)] ?? '')))
      .map((i) => ['x', att.pcrs[String(i)], `PCR${i}`])
    assert.deepEqual(ann.tags.filter((t) => t[0] === 'x'), expectedX)
    assert.equal(ann.tags.filter((t) => t[0] === 'x').length >= 3, true)
    for (const i of [0, 1, 2]) assert.equal(att.pcrs[String(i)], expectedPcrs[i])
    assert.equal(tag(ann, 'expiration'), String(expiration))
    assert.equal(tag(ann, 't'), 'dev')
    assert.deepEqual(ann.tags.filter((t) => t[0] === 'relay'), [['relay', relay.url]])

    assert.deepEqual((events.get(10050) as NostrEvent).tags.filter((t) => t[0] === 'relay'), [['relay', relay.url]])
    assert.deepEqual((events.get(10002) as NostrEvent).tags.filter((t) => t[0] === 'r'), [['r', relay.url]])
    const profile = JSON.parse((events.get(0) as NostrEvent).content) as { name: string; about: string }
    assert.equal(profile.name, 'nec01-test')
    assert.match(profile.about, new RegExp(npub))
    // A simulated service verifies only against the simulator's root and as dev.
    assert.match(profile.about, /--root .*--any-pcrs --expect dev/)

    // Health: public state only.
    const health = await getHealth(svc)
    assert.equal(health.status, 200)
    const h = health.report
    assert.equal(h.status, 'ok')
    assert.equal(h.pubkey, pubkey)
    assert.equal(h.npub, npub)
    assert.equal(h.tee, 'simulated')
    assert.equal(h.t, 'dev')
    assert.equal(h.attestation.expires_at, expiration)
    assert.equal(typeof h.attestation.refreshed_at, 'number')
    assert.deepEqual(h.relays, [{ url: relay.url, connected: true, authed: true, last_error: null }])
    assert.ok((h.counters.published ?? 0) >= 4)
    const pem = await (await fetch(`http://127.0.0.1:${svc.service.healthPort}/root.pem`)).text()
    assert.equal(pem, svc.simulator.rootPem())

    // One round at start: answering the relay's AUTH challenge is no reason to announce again.
    for (const kind of DESCRIBING_KINDS) {
      assert.equal(publishedLines(svc.logs).filter((l) => l.kind === kind).length, 1, `kind ${kind} published once`)
    }

    // The secret key: drawn from the module's random(32), found nowhere outside.
    assert.ok(recorded !== undefined)
    const sk = recorded.draws.find((d) => d.length === 32 && getPublicKey(d) === pubkey)
    assert.ok(sk !== undefined, 'the identity was drawn from nsm.random(32)')
    const stored = await client.fetchEvents([{ authors: [pubkey] }], { relays: [relay.url], timeoutMs: 2000 })
    const haystack = [svc.logs.join('\n'), health.body, pem, JSON.stringify(stored), JSON.stringify([...events.values()]), JSON.stringify(svc.service.health()), JSON.stringify(svc.service.identity)].join('\n')
    const hex = bytesToHex(sk)
    for (const needle of [hex, hex.toUpperCase(), nsecEncode(sk), Buffer.from(sk).toString('base64'), Buffer.from(sk).toString('base64url'), Array.from(sk).join(',')]) {
      assert.ok(!haystack.includes(needle), `the secret key (${needle.slice(0, 6)}…) is not in logs, health or events`)
    }
    assert.ok(svc.logs.length > 5, 'logs were captured')
  } finally {
    await client.close()
    await svc.close()
    await relay.close()
  }
})

test('t comes from the configuration, but the simulator and a debug-mode module only ever yield dev', async () => {
  const relay = await startTestRelay()
  const simulated = await startTestService({ relays: [relay.url], config: { t: 'prod' } })
  const debug = await startTestService({ relays: [relay.url], nsm: { debug: true }, config: { tee: 'nsm', t: 'prod' } })
  try {
    assert.equal(simulated.service.t, 'dev')
    assert.ok(simulated.logs.some((l) => l.includes('forcing t=dev')))
    const simRoot = simulated.service.roots.current()
    assert.ok(simRoot !== null)
    assert.equal(tag(simRoot.event, 't'), 'dev')

    // A debug enclave (PCR0/1/2 zero) on the real module would still never say prod.
    assert.equal(debug.service.t, 'dev')
    assert.ok(debug.logs.some((l) => l.includes('DEBUG-MODE ENCLAVE')))
    const debugRoot = debug.service.roots.current()
    assert.ok(debugRoot !== null)
    assert.equal(tag(debugRoot.event, 't'), 'dev')
    const check = await verifyRootEvent(debugRoot.event, { root: debug.rootDer, anyPcrs: true, expect: 'any' })
    assert.equal(check.valid, false)
    assert.equal(check.reason, 'debug', 'every client rejects it')
  } finally {
    await simulated.close()
    await debug.close()
    await relay.close()
  }
})

test('a document whose PCR16 does not bind the key never becomes a root', async () => {
  const relay = await startTestRelay()
  // A module that drops the PCR16 extend and lock: its documents carry public_key but no
  // PCR16, so the key is bound once instead of twice.
  const svc = await startTestService({
    relays: [relay.url],
    wrapNsm: (sim) => ({ ...recordingNsm(sim).nsm, extendPcr: async () => new Uint8Array(48), lockPcr: async () => undefined }),
  })
  try {
    assert.equal(svc.service.roots.current(), null)
    const h = await getHealth(svc)
    assert.equal(h.status, 503)
    assert.equal(h.report.status, 'no_attestation')
    assert.ok(svc.logs.some((l) => l.includes('attestation refresh failed') && l.includes('PCR16')))
    await assert.rejects(svc.service.publisher.publish({ kind: 1, created_at: 0, tags: [], content: 'unbound' }), NoRootError)
  } finally {
    await svc.close()
    await relay.close()
  }
})

test('no attestation at boot: nothing is signed, not even AUTH; once the module answers, the service authenticates and publishes', async () => {
  const relay = await startTestRelay({ requireAuth: true })
  let recorded: ReturnType<typeof recordingNsm> | undefined
  const svc = await startTestService({
    relays: [relay.url],
    wrapNsm: (sim) => {
      recorded = recordingNsm(sim)
      recorded.failAttest.on = true
      return recorded.nsm
    },
  })
  try {
    assert.ok(recorded !== undefined)
    // The service is up without a root: health says so, and the relay's AUTH went unsigned.
    assert.equal((await getHealth(svc)).report.status, 'no_attestation')
    await waitFor(() => /AUTH failed.*fail closed/.test(svc.service.health().relays[0]?.last_error ?? ''), 'the unsigned AUTH')
    assert.equal(svc.service.health().relays[0]?.authed, false)

    recorded.failAttest.on = false
    await waitFor(() => svc.service.health().relays[0]?.authed === true, 'AUTH once a root exists')
    const client = reader([relay.url])
    try {
      const events = await describingEvents(client, svc.service.identity.pubkey, relay.url)
      for (const [kind, event] of events) assertValid(await verifyTeeRoot(event, { root: svc.rootDer, anyPcrs: true, expect: 'dev' }), `kind ${kind}`)
    } finally {
      await client.close()
    }
    assert.equal((await getHealth(svc)).report.status, 'ok')
    assert.equal(publishedLines(svc.logs).filter((l) => l.kind === 13793).length, 1, 'one announcement round')
  } finally {
    await svc.close()
    await relay.close()
  }
})

test('the root rotates with the leaf, every event verifies at its own created_at, and with no valid root nothing is signed', async () => {
  const relay = await startTestRelay()
  const watcher = reader([relay.url])
  const seen: NostrEvent[] = []
  watcher.subscribe([{ kinds: DESCRIBING_KINDS }], { onevent: (e) => seen.push(e) })
  let recorded: ReturnType<typeof recordingNsm> | undefined
  // 4-second leaves renewed in their last 2 s, and a 3 s refresh margin: the service asks
  // before the module renews, gets the same leaf for a while, then a new one every ~2 s.
  const svc = await startTestService({
    relays: [relay.url],
    nsm: { leafLifetimeSec: 4, leafRenewMarginSec: 2 },
    config: { marginSec: 3 },
    wrapNsm: (sim) => (recorded = recordingNsm(sim)).nsm,
  })
  try {
    assert.ok(recorded !== undefined)
    const { service } = svc
    const expectedPcrs = await bootPcrs(svc.simulator)
    const announcedRoots = (): Set<string> => new Set(seen.filter((e) => e.kind === 13793).map((e) => rootOf(e).id))

    // Rotation: a second root, and the announcements republished with it.
    await waitFor(() => announcedRoots().size >= 2, 'announcements of a second root')
    assert.ok((service.counters.root_rotations ?? 0) >= 2)

    // The NSM stops attesting: the root runs out, health says so, publishing is refused.
    recorded.failAttest.on = true
    const failures = (): Array<{ retry_ms: number }> =>
      svc.logs.map((l) => JSON.parse(l) as { msg: string; retry_ms: number }).filter((l) => l.msg === 'attestation refresh failed')
    await waitFor(async () => (await getHealth(svc)).report.status === 'no_attestation' && failures().length >= 2, 'no_attestation after failed refreshes')
    const down = await getHealth(svc)
    assert.equal(down.status, 503)
    assert.equal(down.report.attestation.expires_at, null)
    assert.equal(service.roots.current(), null)
    await assert.rejects(service.publisher.publish({ kind: 1, created_at: 0, tags: [], content: 'must not be signed' }), NoRootError)
    assert.throws(() => service.publisher.sign({ kind: 1, created_at: 0, tags: [], content: 'nor this' }), NoRootError)
    const retries = failures().map((f) => f.retry_ms)
    for (let i = 1; i < retries.length; i++) assert.ok((retries[i] ?? 0) > (retries[i - 1] ?? 0), `backoff grows: ${retries.join(', ')}`)

    // The module answers again: the next retry makes a new root and announces it.
    const before = announcedRoots().size
    recorded.failAttest.on = false
    await waitFor(async () => (await getHealth(svc)).report.status === 'ok' && announcedRoots().size > before, 'recovery and a new announcement')

    // Every event the service published verifies at the moment it says it was made, and no
    // two roots share a leaf (a root is only replaced when the leaf changed).
    const roots = new Map<string, NostrEvent>()
    for (const event of seen) {
      assertValid(await verifyTeeRoot(event, { root: svc.rootDer, expectedPcrs, expect: 'dev', now: event.created_at }), `kind ${event.kind} at ${event.created_at}`)
      roots.set(rootOf(event).id, rootOf(event))
    }
    assert.ok(roots.size >= 3)
    const leaves = new Set([...roots.values()].map((r) => tag(r, 'expiration')))
    assert.equal(leaves.size, roots.size, 'one root per leaf')
    // The text "must not be signed" never reached the relay.
    const stored = await watcher.fetchEvents([{ kinds: [1], authors: [service.identity.pubkey] }], { timeoutMs: 2000 })
    assert.deepEqual(stored, [])
  } finally {
    await watcher.close()
    await svc.close()
    await relay.close()
  }
})

test('a relay that restarts (same port, same database, then empty) gets the announcements again once the service reconnects', async () => {
  const dir = tempDir()
  const dbPath = join(dir.path, 'relay.sqlite')
  let relay = await startTestRelay({ requireAuth: true, dbPath })
  const { port, url } = relay
  const svc = await startTestService({ relays: [url] })
  const { pubkey } = svc.service.identity
  const expectedPcrs = await bootPcrs(svc.simulator)
  const announcements = (): string[][] => publishedLines(svc.logs).filter((l) => l.kind === 13793).map((l) => l.relays)
  const restart = async (opts: { dbPath?: string }): Promise<void> => {
    await relay.close()
    await waitFor(() => svc.service.health().relays[0]?.connected === false, 'the service to see the relay go')
    assert.match(svc.service.health().relays[0]?.last_error ?? '', /connection lost/)
    relay = await startTestRelay({ requireAuth: true, port, ...opts })
    assert.equal(relay.url, url)
    await waitFor(() => {
      const r = svc.service.health().relays[0]
      return r?.connected === true && r.authed
    }, 'reconnected and authenticated')
  }
  const verifyStored = async (): Promise<void> => {
    const client = reader([url])
    try {
      const events = await describingEvents(client, pubkey, url)
      for (const [kind, event] of events) assertValid(await verifyTeeRoot(event, { root: svc.rootDer, expectedPcrs, expect: 'dev' }), `kind ${kind}`)
    } finally {
      await client.close()
    }
  }
  try {
    await verifyStored()
    assert.equal(announcements().length, 1)

    // Same database: the events survived, and the service sent them again anyway.
    await restart({ dbPath })
    await waitFor(() => announcements().length === 2, 'the announcement sent after the restart')
    assert.match(announcements()[1]?.[0] ?? '', new RegExp(`^${url} ok`))
    await verifyStored()

    // Fresh in-memory database: whatever is there now was sent after this restart.
    await restart({})
    await verifyStored()
    assert.equal(svc.service.health().status, 'ok')
    // Once per connection: not again for the AUTH that followed each reconnect.
    assert.equal(announcements().length, 3)
  } finally {
    await svc.close()
    await relay.close()
    dir.remove()
  }
})

test('an unreachable relay and one that refuses our event size are reported; the other relay gets everything and answers work', async () => {
  const good = await startTestRelay()
  const small = await startTestRelay({ maxMessageLength: 4096 })
  const dead = `ws://127.0.0.1:${await freePort()}`
  const svc = await startTestService({ relays: [good.url, small.url, dead] })
  const clientKey = generateSecretKey()
  const client = reader([good.url, small.url], clientKey)
  try {
    const { service } = svc
    const { pubkey } = service.identity
    await describingEvents(client, pubkey, good.url)

    // The publish report, relay by relay.
    const { results } = await service.publisher.publish({ kind: 1, created_at: 0, tags: [], content: 'hello from the enclave' })
    const byUrl = new Map(results.map((r) => [r.url, r]))
    assert.equal(byUrl.get(good.url)?.ok, true)
    assert.equal(byUrl.get(small.url)?.ok, false)
    assert.equal(byUrl.get(small.url)?.code, 'too-large')
    assert.match(byUrl.get(small.url)?.message ?? '', /too large \(\d+ bytes > max_message_length 4096\)/)
    assert.equal(byUrl.get(dead)?.code, 'not-connected')

    // Health: the dead relay's error, the small relay's refusal, the service still ok.
    await waitFor(() => service.health().relays.find((r) => r.url === dead)?.last_error !== null, 'an error for the dead relay')
    const h = (await getHealth(svc)).report
    assert.equal(h.status, 'ok')
    const status = new Map(h.relays.map((r) => [r.url, r]))
    assert.equal(status.get(good.url)?.connected, true)
    assert.equal(status.get(good.url)?.last_error, null)
    assert.equal(status.get(dead)?.connected, false)
    assert.match(status.get(dead)?.last_error ?? '', /connect failed/)
    assert.equal(status.get(small.url)?.connected, true, 'the small relay is not disconnected over it')
    assert.match(status.get(small.url)?.last_error ?? '', /too large/)

    // The small relay holds nothing of ours: the events were skipped, not sent.
    assert.deepEqual(await client.fetchEvents([{ authors: [pubkey] }], { relays: [small.url], timeoutMs: 2000 }), [])

    // And the service answers on the relay that works: a NIP-04 ping gets its pong.
    const me = identityFromSecret(clientKey)
    const replies: NostrEvent[] = []
    client.subscribe([{ kinds: [4], authors: [pubkey], '#p': [me.pubkey] }], { relays: [good.url], onevent: (e) => replies.push(e) })
    const ping = me.sign({ kind: 4, created_at: Math.floor(Date.now() / 1000), tags: [['p', pubkey]], content: me.nip04Encrypt(pubkey, 'ping') })
    const sent = await client.publish(ping, { relays: [good.url] })
    assert.equal(sent[0]?.ok, true)
    await waitFor(() => replies.length > 0, 'a reply to ping')
    const reply = replies[0] as NostrEvent
    assert.match(me.nip04Decrypt(pubkey, reply.content), /pong/)
    assertValid(await verifyTeeRoot(reply, { root: svc.rootDer, anyPcrs: true, expect: 'dev' }), 'the reply')

    // Each event was tried once on the small relay and skipped: no retry loop.
    const lines = publishedLines(svc.logs)
    assert.equal(new Set(lines.map((l) => l.id)).size, lines.length, 'no event sent twice')
    const skipped = lines.filter((l) => l.relays.some((r) => r.startsWith(`${small.url} refused: skipped: too large`)))
    assert.ok(skipped.length >= 5)
    assert.equal(service.counters.publish_too_large, skipped.length)
  } finally {
    await client.close()
    await svc.close()
    await good.close()
    await small.close()
  }
})

test('the health endpoint answers only GET on loopback paths it knows', async () => {
  const relay = await startTestRelay()
  const state = tempDir()
  const svc = await startTestService({ relays: [relay.url], stateDir: join(state.path, 'sim') })
  try {
    const base = `http://127.0.0.1:${svc.service.healthPort}`
    assert.equal((await fetch(`${base}/nope`)).status, 404)
    assert.equal((await fetch(`${base}/health`, { method: 'POST' })).status, 405)
    const h = await (await fetch(`${base}/health?x=1`)).json() as HealthReport
    assert.deepEqual(Object.keys(h).sort(), ['attestation', 'counters', 'identity', 'npub', 'pubkey', 'relays', 'status', 't', 'tee'])
  } finally {
    await svc.close()
    await relay.close()
    state.remove()
  }
})
