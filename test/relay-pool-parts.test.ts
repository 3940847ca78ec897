// The relay pool's parts on their own, with no socket: configuration, backoff, records and
// their health snapshot, target resolution, state waiters, subscription bookkeeping, and the
// answers publish gives before it sends anything. The pool as a whole is in relay-pool.test.ts.
import { test } from 'node:test'
import { Agent } from 'node:http'
import assert from 'node:assert/strict'
import { finalizeEvent, generateSecretKey } from 'nostr-tools/pure'
import { createLogger, type Logger } from '../src/log.js'
import { DEFAULTS, createPoolContext, resolveConfig, type PoolContext, type RelayRec } from '../src/relays/pool-context.js'
import { errorText } from '../nec01/errors.js'
import { backoffDelay, failuresAfter, STABLE_CONNECTION_MS } from '../src/relays/pool-connection.js'
import { describeReply } from '../src/relays/pool-auth.js'
import { replyResult, publish } from '../src/relays/pool-publish.js'
import { addRecord, recordError, resolveTargets, setState, snapshot, waitConnected, withDeadline } from '../src/relays/pool-state.js'
import { authMightHelp, deliver, fetchEvents, filterProblem, subscribe, targets } from '../src/relays/pool-subscriptions.js'
import { RelayPoolError, type NostrEvent, type RelayPoolOptions, type RelayStatus } from '../src/relays/pool.js'

const A = 'ws://127.0.0.1:7001'
const B = 'ws://127.0.0.1:7002'

function capture(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({}, { level: 'debug', sink: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) })
  return { logger, lines }
}

function context(extra: Omit<RelayPoolOptions, 'relays'> = {}): PoolContext {
  return createPoolContext({ logger: createLogger({}, { level: 'error', sink: () => undefined }), ...extra })
}

function withRelays(...urls: Array<{ url: string; read: boolean; write: boolean }>): { ctx: PoolContext; recs: RelayRec[] } {
  const ctx = context()
  return { ctx, recs: urls.map((e) => addRecord(ctx, e)) }
}

const rw = (url: string) => ({ url, read: true, write: true })

test('resolveConfig: defaults for what is not given, the caller wins for what is', () => {
  const cfg = resolveConfig({})
  assert.equal(cfg.connectTimeoutMs, DEFAULTS.connectTimeoutMs)
  assert.equal(cfg.initialBackoffMs, DEFAULTS.initialBackoffMs)
  assert.equal(cfg.maxBackoffMs, DEFAULTS.maxBackoffMs)
  assert.equal(cfg.nip11, true)
  assert.equal(cfg.authOnChallenge, true)
  const mine = resolveConfig({ backoff: { initialMs: 5 }, heartbeatMs: 0, nip11: false, authOnChallenge: false })
  assert.deepEqual(
    [mine.initialBackoffMs, mine.maxBackoffMs, mine.heartbeatMs, mine.nip11, mine.authOnChallenge],
    [5, DEFAULTS.maxBackoffMs, 0, false, false],
  )
})

test('createPoolContext: a bad proxy URL is a typed error; a caller agent wins over a proxy', () => {
  assert.throws(() => context({ proxy: 'not a url' }), (err: unknown) => err instanceof RelayPoolError && err.code === 'pool/bad-proxy')
  const proxied = context({ proxy: 'http://127.0.0.1:3128' })
  assert.ok(proxied.ownAgent)
  assert.equal(proxied.agent, proxied.ownAgent)
  proxied.ownAgent.destroy()
  const agent = new Agent()
  const given = context({ proxy: 'http://127.0.0.1:3128', agent })
  assert.equal(given.agent, agent)
  assert.equal(given.ownAgent, undefined, 'no agent of its own to destroy')
  agent.destroy()
  const direct = context()
  assert.equal(direct.agent, undefined)
  assert.equal(direct.ownAgent, undefined)
})

test('backoffDelay doubles from the initial delay, is capped, and never waits less than half the base', () => {
  const cfg = { initialBackoffMs: 1_000, maxBackoffMs: 60_000 }
  assert.equal(backoffDelay(1, cfg, 0), 500)
  assert.equal(backoffDelay(1, cfg, 0.999999), 1_000)
  assert.equal(backoffDelay(2, cfg, 0), 1_000)
  assert.equal(backoffDelay(3, cfg, 0.5), 3_000)
  assert.equal(backoffDelay(7, cfg, 0), 30_000, '64 s base is capped at 60 s')
  assert.equal(backoffDelay(7, cfg, 0.999999), 60_000)
  // however many failures, the delay stays finite and within the cap
  const late = backoffDelay(1_000_000, cfg, 0.25)
  assert.equal(late, 37_500)
})

test('failuresAfter: a connection that stayed up long enough starts a new count', () => {
  const now = 1_000_000
  assert.equal(failuresAfter(0, null, now), 1, 'first failed attempt')
  assert.equal(failuresAfter(4, null, now), 5, 'never connected')
  assert.equal(failuresAfter(4, now - STABLE_CONNECTION_MS + 1, now), 5, 'dropped too soon')
  assert.equal(failuresAfter(4, now - STABLE_CONNECTION_MS, now), 1, 'was stable')
})

test('addRecord normalises the URL, keeps one record per relay, and refuses what is not a relay URL', () => {
  const ctx = context()
  const rec = addRecord(ctx, { url: `${A}/`, read: true, write: false })
  assert.equal(rec.entry.url, A)
  const again = addRecord(ctx, { url: A, read: false, write: true })
  assert.equal(again, rec, 'same record')
  assert.deepEqual(rec.entry, { url: A, read: false, write: true }, 'markers replaced')
  assert.equal(ctx.recs.size, 1)
  assert.throws(
    () => addRecord(ctx, { url: 'http://127.0.0.1:7003', read: true, write: true }),
    (err: unknown) => err instanceof RelayPoolError && err.code === 'pool/bad-relay-url',
  )
  assert.equal(ctx.recs.size, 1)
})

test('resolveTargets: named relays once each, in order, unknown ones apart; else the fallback filter', () => {
  const { ctx, recs } = withRelays({ url: A, read: true, write: false }, { url: B, read: false, write: true })
  const [a, b] = recs
  assert.deepEqual(resolveTargets(ctx.recs, undefined, (e) => e.write), { known: [b], unknown: [] })
  assert.deepEqual(resolveTargets(ctx.recs, undefined, (e) => e.read), { known: [a], unknown: [] })
  const named = resolveTargets(ctx.recs, [`${B}/`, A, B, 'ws://127.0.0.1:7009', 'junk', 'junk'], () => false)
  assert.deepEqual(named, { known: [b, a], unknown: ['ws://127.0.0.1:7009', 'junk'] })
})

test('snapshot: health of a record not yet connected, with NIP-11 limits copied or its error', () => {
  const { recs } = withRelays(rw(A))
  const rec = recs[0] as RelayRec
  rec.failures = 3
  recordError(rec, 'x'.repeat(600))
  const s = snapshot(rec)
  assert.equal(s.state, 'connecting')
  assert.equal(s.connected, false)
  assert.equal(s.authed, false)
  assert.equal(s.failures, 3)
  assert.equal(s.last_error?.length, 500)
  assert.ok(s.last_error?.endsWith('...'))
  assert.equal(typeof s.last_error_at, 'number')
  assert.equal(s.limits, null)
  assert.equal(s.subscriptions, 0)

  rec.nip11 = { ok: true, document: {}, limits: { max_filters: 2 } }
  const limits = snapshot(rec).limits
  assert.deepEqual(limits, { max_filters: 2 })
  assert.notEqual(limits, rec.nip11.limits, 'a copy: health JSON cannot change the pool')
  rec.nip11 = { ok: false, code: 'nip11/timeout', message: 'no answer' }
  assert.equal(snapshot(rec).nip11_error, 'nip11/timeout: no answer')
})

test('setState wakes waitConnected and reports the new status; a throwing listener is logged, not thrown', async () => {
  const seen: RelayStatus[] = []
  const { logger, lines } = capture()
  const ctx = createPoolContext({
    logger,
    onStatusChange: (s) => {
      seen.push(s)
      throw new Error('listener broke')
    },
  })
  const rec = addRecord(ctx, rw(A))
  const far = Date.now() + 10_000
  const up = waitConnected(rec, far)
  setState(ctx, rec, 'connected')
  assert.equal(await up, true)
  assert.equal(await waitConnected(rec, far), true, 'already connected')
  assert.deepEqual(
    seen.map((s) => s.state),
    ['connected'],
  )
  assert.ok(lines.some((l) => l.msg === 'callback threw' && l.callback === 'onStatusChange'))

  setState(ctx, rec, 'connecting')
  const down = waitConnected(rec, far)
  setState(ctx, rec, 'backoff')
  assert.equal(await down, false, 'the attempt failed')
  assert.equal(await waitConnected(rec, far), false, 'in backoff: not waiting for the retry')
  setState(ctx, rec, 'connecting')
  const start = Date.now()
  assert.equal(await waitConnected(rec, Date.now() + 30), false, 'deadline')
  assert.ok(Date.now() - start >= 25)
  assert.equal(rec.stateWaiters.size, 0, 'no waiter left behind')
})

test('withDeadline: the value, or the fallback on rejection or at the deadline', async () => {
  const far = Date.now() + 10_000
  assert.equal(await withDeadline(Promise.resolve(1), far, 0), 1)
  assert.equal(await withDeadline(Promise.reject(new Error('no')), far, 0), 0)
  assert.equal(await withDeadline(new Promise<number>(() => undefined), Date.now() + 20, 0), 0)
})

test('filterProblem and authMightHelp decide what a subscription sends and when AUTH is worth a retry', () => {
  assert.equal(filterProblem([], {}), 'no filters')
  assert.equal(filterProblem('nope', {}), 'no filters')
  assert.equal(filterProblem([{}, {}], { max_filters: 2 }), null)
  assert.equal(filterProblem([{}, {}, {}], { max_filters: 2 }), 'skipped: 3 filters > max_filters 2')
  assert.equal(authMightHelp('auth-required: log in', false), true)
  assert.equal(authMightHelp('restricted: DMs', true), true)
  assert.equal(authMightHelp('restricted: DMs', false), false, 'already authed when asked: AUTH will not change it')
  assert.equal(authMightHelp('error: shutting down', true), false)
})

test('subscribe registers with its named targets; close removes it; deliver passes each event once', () => {
  const { ctx, recs } = withRelays(rw(A), { url: B, read: false, write: true })
  const [a, b] = recs as [RelayRec, RelayRec]
  const got: Array<[string, string]> = []
  const handle = subscribe(ctx, [{ kinds: [1] }], {
    relays: [`${B}/`, 'ws://127.0.0.1:7009'],
    onevent: (ev, url) => {
      got.push([ev.id, url])
      throw new Error('caller bug')
    },
  })
  const sub = ctx.subs.get(handle.id)
  assert.ok(sub)
  assert.deepEqual([...(sub.targets ?? [])], [B])
  assert.equal(targets(sub, b), true, 'named, even though not a read relay')
  assert.equal(targets(sub, a), false)

  const event = finalizeEvent({ kind: 1, created_at: 1, tags: [], content: 'x' }, generateSecretKey())
  deliver(ctx, sub, event, B)
  deliver(ctx, sub, event, A)
  assert.deepEqual(got, [[event.id, B]])

  handle.close()
  assert.equal(ctx.subs.has(handle.id), false)
  assert.equal(sub.closed, true)
  deliver(ctx, sub, { ...event, id: 'f'.repeat(64) }, B)
  assert.equal(got.length, 1, 'nothing after close')
})

test('deliver forgets the oldest id once it has seen 10 000', () => {
  const ctx = context()
  const got: string[] = []
  const handle = subscribe(ctx, [{ kinds: [1] }], { onevent: (ev) => got.push(ev.id) })
  const sub = ctx.subs.get(handle.id)
  assert.ok(sub)
  const base = finalizeEvent({ kind: 1, created_at: 1, tags: [], content: '' }, generateSecretKey())
  const id = (i: number): string => i.toString(16).padStart(64, '0')
  for (let i = 0; i <= 10_000; i++) deliver(ctx, sub, { ...base, id: id(i) }, A)
  assert.equal(sub.seen.size, 10_000)
  deliver(ctx, sub, { ...base, id: id(10_000) }, A)
  deliver(ctx, sub, { ...base, id: id(0) }, A)
  assert.equal(got.length, 10_002, 'the newest is still known, the oldest is not')
})

test('publish answers without sending: unknown relays, a closed pool, an invalid event', async () => {
  const { ctx } = withRelays(rw(A), { url: B, read: true, write: false })
  const sk = generateSecretKey()
  const event = finalizeEvent({ kind: 1, created_at: 1, tags: [], content: 'x' }, sk)
  const invalid = { ...event, sig: 1 } as unknown as NostrEvent
  assert.deepEqual(await publish(ctx, invalid, { relays: [A, 'ws://127.0.0.1:7009'] }), [
    { url: A, ok: false, code: 'invalid-event', message: 'not a signed Nostr event' },
    { url: 'ws://127.0.0.1:7009', ok: false, code: 'not-in-pool', message: 'relay is not in the pool' },
  ])
  ctx.closed = true
  assert.deepEqual(await publish(ctx, event), [{ url: A, ok: false, code: 'pool-closed', message: 'the pool is closed' }], 'write relays only')
  assert.deepEqual(await fetchEvents(ctx, [{ kinds: [1] }]), [])
})

test('replyResult and describeReply name each kind of answer', () => {
  const { recs } = withRelays(rw(A))
  const rec = recs[0] as RelayRec
  assert.deepEqual(replyResult(rec, { kind: 'ok', message: 'duplicate:' }), { url: A, ok: true, code: 'ok', message: 'duplicate:' })
  assert.deepEqual(replyResult(rec, { kind: 'rejected', message: 'blocked: no' }), { url: A, ok: false, code: 'rejected', message: 'blocked: no' })
  assert.equal(replyResult(rec, { kind: 'timeout' }).code, 'timeout')
  assert.equal(replyResult(rec, { kind: 'closed' }).message, 'connection closed before OK')
  recordError(rec, 'connection lost: reset')
  assert.equal(replyResult(rec, { kind: 'closed' }).message, 'connection lost: reset')
  assert.equal(describeReply({ kind: 'rejected', message: '' }), 'rejected without a reason')
  assert.equal(describeReply({ kind: 'timeout' }), 'no OK in time')
  assert.equal(errorText(new Error('boom')), 'boom')
  assert.equal(errorText(7), '7')
})
