// The service's relay pool: one nostr-tools AbstractRelay per connection over `ws`, with the
// things a long-running service needs and nostr-tools leaves to the caller: reconnects with
// backoff that survive any number of failures, subscriptions re-sent after each reconnect,
// NIP-42 AUTH through a signer callback (the key never enters the pool), NIP-11 limits,
// per-relay health, optional HTTP CONNECT proxy, and a close() that leaves no timers.
//
// nostr-tools' own reconnect, ping and AUTH paths are not used: on failure they leak timers,
// can raise unhandled rejections (a relay refusing our AUTH event) or hang (a failing
// signer). Each connection is a fresh AbstractRelay; this file owns every timer.
import type { Agent } from 'node:http'
import { WebSocket } from 'ws'
import { HttpsProxyAgent } from 'https-proxy-agent'
import type { Subscription } from 'nostr-tools/abstract-relay'
import { makeAuthEvent } from 'nostr-tools/nip42'
import { createLogger } from '../log.js'
import { normalizeRelayUrl, type RelayEntry } from './config.js'
import { fetchRelayInfo, type Nip11Result } from './nip11.js'
import { PoolRelay, isEvent, type RelayHooks, type WebSocketImpl } from './pool-relay.js'
import {
  RelayPoolError,
  type FetchOptions,
  type Filter,
  type NostrEvent,
  type PoolSubscription,
  type PublishCode,
  type PublishOptions,
  type PublishReport,
  type PublishResult,
  type RelayPool,
  type RelayPoolOptions,
  type RelayState,
  type RelayStatus,
  type SignAuth,
  type SubscribeOptions,
} from './pool-types.js'

export * from './pool-types.js'

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  publishTimeoutMs: 10_000,
  initialBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  heartbeatMs: 30_000,
  nip11TimeoutMs: 5_000,
  maxPayload: 16 * 1024 * 1024,
  eoseTimeoutMs: 10_000,
  fetchTimeoutMs: 10_000,
}
/** a connection that lived this long resets the backoff; shorter ones count as failures */
const STABLE_CONNECTION_MS = 30_000
/** how long an auth-required refusal waits for a challenge the relay has not sent yet */
const CHALLENGE_WAIT_MS = 3_000
const SEEN_IDS_PER_SUBSCRIPTION = 10_000
/** grace for a relay to answer our close frame before the socket is cut */
const CLOSE_GRACE_MS = 1_000

type OkReply = { kind: 'ok'; message: string } | { kind: 'rejected'; message: string } | { kind: 'timeout' } | { kind: 'closed' }
/** `local`: the failure was ours (the signer could not sign), not the relay's refusal. */
type AuthOutcome = { ok: true } | { ok: false; message: string; local?: boolean }

interface OkWaiter {
  done(reply: OkReply): void
}

/** One websocket session with a relay. */
interface Conn {
  relay: PoolRelay | null
  ws: WebSocket | null
  ended: boolean
  /** we are closing it: let the close frame go out instead of cutting the socket */
  graceful: boolean
  connected: boolean
  openedAt: number | null
  socketError: string | null
  closeInfo: string | null
  challenge: string | null
  failedChallenge: string | null
  authed: boolean
  authPubkey: string | null
  authAttempt: Promise<AuthOutcome> | null
  challengeWaiters: Set<() => void>
  pending: Map<string, Set<OkWaiter>>
  /** pool subscription id → its nostr-tools subscription on this connection */
  subs: Map<string, Subscription>
  authRetried: Set<string>
  /** subscriptions whose REQ went out before this connection authenticated */
  sentUnauthed: Set<string>
  connectTimer: ReturnType<typeof setTimeout> | null
  heartbeat: ReturnType<typeof setInterval> | null
  awaitingPong: boolean
}

interface RelayRec {
  entry: RelayEntry
  state: RelayState
  conn: Conn | null
  removed: boolean
  lastError: string | null
  lastErrorAt: number | null
  failures: number
  retryTimer: ReturnType<typeof setTimeout> | null
  nextRetryAt: number | null
  nip11: Nip11Result | null
  nip11Promise: Promise<void> | null
  nip11Abort: AbortController | null
  stateWaiters: Set<() => void>
}

interface PoolSub {
  id: string
  filtersFn: () => Filter[]
  opts: SubscribeOptions
  /** explicit targets, or null for every read relay */
  targets: Set<string> | null
  seen: Set<string>
  closed: boolean
  /** internal: a relay stopped serving this subscription for good or for now */
  ondone?: (url: string) => void
}

export function createRelayPool(options: RelayPoolOptions): RelayPool {
  const log = (options.logger ?? createLogger()).child({ component: 'relay-pool' })
  const cfg = {
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    publishTimeoutMs: options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs,
    initialBackoffMs: options.backoff?.initialMs ?? DEFAULTS.initialBackoffMs,
    maxBackoffMs: options.backoff?.maxMs ?? DEFAULTS.maxBackoffMs,
    heartbeatMs: options.heartbeatMs ?? DEFAULTS.heartbeatMs,
    nip11: options.nip11 ?? true,
    nip11TimeoutMs: options.nip11TimeoutMs ?? DEFAULTS.nip11TimeoutMs,
    maxPayload: options.maxPayload ?? DEFAULTS.maxPayload,
    eoseTimeoutMs: options.eoseTimeoutMs ?? DEFAULTS.eoseTimeoutMs,
    authOnChallenge: options.authOnChallenge ?? true,
  }
  const signAuth = options.signAuth

  function safeCall(fn: () => void, what: string): void {
    try {
      fn()
    } catch (err) {
      // A throwing callback must not break the pool's bookkeeping: reported, not rethrown.
      log.error('callback threw', { callback: what, error: err })
    }
  }

  let ownAgent: HttpsProxyAgent<string> | undefined
  let agent: Agent | undefined = options.agent
  if (agent === undefined && options.proxy !== undefined) {
    try {
      ownAgent = new HttpsProxyAgent(options.proxy)
    } catch (err) {
      throw new RelayPoolError('pool/bad-proxy', `invalid proxy URL: ${errorText(err)}`)
    }
    agent = ownAgent
  }

  const recs = new Map<string, RelayRec>()
  const subs = new Map<string, PoolSub>()
  let subCounter = 0
  let closed = false
  let closing: Promise<void> | undefined

  for (const entry of options.relays) addRecord(entry)
  for (const rec of recs.values()) openConnection(rec)

  // ---- records and state ----

  function addRecord(entry: RelayEntry): RelayRec {
    const url = normalizeRelayUrl(entry.url)
    if (url === null) throw new RelayPoolError('pool/bad-relay-url', `not a ws:// or wss:// URL: ${JSON.stringify(entry.url)}`)
    const existing = recs.get(url)
    if (existing) {
      existing.entry = { url, read: entry.read, write: entry.write }
      return existing
    }
    const rec: RelayRec = {
      entry: { url, read: entry.read, write: entry.write },
      state: 'connecting',
      conn: null,
      removed: false,
      lastError: null,
      lastErrorAt: null,
      failures: 0,
      retryTimer: null,
      nextRetryAt: null,
      nip11: null,
      nip11Promise: null,
      nip11Abort: null,
      stateWaiters: new Set(),
    }
    recs.set(url, rec)
    return rec
  }

  function setState(rec: RelayRec, state: RelayState): void {
    rec.state = state
    for (const wake of [...rec.stateWaiters]) wake()
    if (options.onStatusChange) safeCall(() => options.onStatusChange?.(snapshot(rec)), 'onStatusChange')
  }

  function recordError(rec: RelayRec, message: string): void {
    rec.lastError = message.length > 500 ? message.slice(0, 497) + '...' : message
    rec.lastErrorAt = Date.now()
  }

  function snapshot(rec: RelayRec): RelayStatus {
    const conn = rec.conn
    const connected = conn?.connected ?? false
    return {
      url: rec.entry.url,
      read: rec.entry.read,
      write: rec.entry.write,
      state: rec.state,
      connected,
      authed: connected && (conn?.authed ?? false),
      auth_pubkey: connected ? (conn?.authPubkey ?? null) : null,
      last_error: rec.lastError,
      last_error_at: rec.lastErrorAt,
      connected_since: connected ? (conn?.openedAt ?? null) : null,
      failures: connected ? 0 : rec.failures,
      next_retry_at: rec.nextRetryAt,
      limits: rec.nip11?.ok ? { ...rec.nip11.limits } : null,
      nip11_error: rec.nip11 && !rec.nip11.ok ? `${rec.nip11.code}: ${rec.nip11.message}` : null,
      subscriptions: conn?.subs.size ?? 0,
    }
  }

  /** true once the relay is connected, false if the attempt fails or the deadline passes */
  function waitConnected(rec: RelayRec, deadline: number): Promise<boolean> {
    if (rec.state === 'connected') return Promise.resolve(true)
    if (rec.state !== 'connecting') return Promise.resolve(false)
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        rec.stateWaiters.delete(check)
        resolve(rec.state === 'connected')
      }
      const check = (): void => {
        if (rec.state !== 'connecting') done()
      }
      rec.stateWaiters.add(check)
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()))
    })
  }

  // ---- connections ----

  function openConnection(rec: RelayRec): void {
    if (closed || rec.removed) return
    rec.retryTimer = null
    rec.nextRetryAt = null
    const conn: Conn = {
      relay: null,
      ws: null,
      ended: false,
      graceful: false,
      connected: false,
      openedAt: null,
      socketError: null,
      closeInfo: null,
      challenge: null,
      failedChallenge: null,
      authed: false,
      authPubkey: null,
      authAttempt: null,
      challengeWaiters: new Set(),
      pending: new Map(),
      subs: new Map(),
      authRetried: new Set(),
      sentUnauthed: new Set(),
      connectTimer: null,
      heartbeat: null,
      awaitingPong: false,
    }
    rec.conn = conn
    setState(rec, 'connecting')
    if (cfg.nip11 && (rec.nip11 === null ? rec.nip11Promise === null : !rec.nip11.ok)) startNip11(rec)

    const hooks: RelayHooks = {
      onChallenge: (challenge) => onChallenge(rec, conn, challenge),
      onOk: (id, ok, message) => onOk(conn, id, ok, message),
      onNotice: (message) => log.info('relay notice', { relay: rec.entry.url, notice: message.slice(0, 300) }),
      onDropped: (reason) => log.debug('dropped relay message', { relay: rec.entry.url, reason }),
    }
    try {
      conn.relay = new PoolRelay(rec.entry.url, socketClass(conn), hooks)
    } catch (err) {
      conn.socketError = errorText(err)
      endConnection(rec, conn)
      return
    }
    conn.relay.onclose = () => endConnection(rec, conn)
    conn.connectTimer = setTimeout(() => {
      conn.connectTimer = null
      conn.socketError ??= `connect timed out after ${cfg.connectTimeoutMs} ms`
      conn.ws?.terminate()
    }, cfg.connectTimeoutMs)
    conn.relay.connect().then(
      () => connectionOpened(rec, conn),
      (err: unknown) => {
        conn.socketError ??= errorText(err)
        endConnection(rec, conn)
      },
    )
  }

  /** A `ws` class bound to this connection: proxy agent, limits, and listeners that record why it failed. */
  function socketClass(conn: Conn): WebSocketImpl {
    const wsOptions = {
      maxPayload: cfg.maxPayload,
      handshakeTimeout: cfg.connectTimeoutMs,
      perMessageDeflate: false,
      ...(agent ? { agent } : {}),
    }
    class PoolSocket extends WebSocket {
      constructor(url: string) {
        super(url, wsOptions)
        conn.ws = this
        // Always listening: ws emits 'error' after nostr-tools has detached its handler (e.g.
        // closing a socket still connecting), and an unheard 'error' would crash the process.
        this.on('error', (err: Error) => {
          conn.socketError ??= err.message
        })
        this.on('close', (code: number, reason: Buffer) => {
          const why = reason.toString('utf8').slice(0, 200)
          conn.closeInfo = `closed (code ${code}${why ? `: ${why}` : ''})`
        })
        this.on('pong', () => {
          conn.awaitingPong = false
        })
        this.on('message', () => {
          conn.awaitingPong = false
        })
      }
    }
    return PoolSocket as unknown as WebSocketImpl
  }

  function connectionOpened(rec: RelayRec, conn: Conn): void {
    if (conn.ended || rec.conn !== conn) return
    clearConnectTimer(conn)
    conn.connected = true
    conn.openedAt = Date.now()
    log.info('relay connected', { relay: rec.entry.url })
    if (cfg.heartbeatMs > 0) {
      conn.heartbeat = setInterval(() => {
        if (conn.awaitingPong) {
          conn.socketError ??= 'no answer to ping'
          conn.ws?.terminate()
          return
        }
        conn.awaitingPong = true
        try {
          conn.ws?.ping()
        } catch {
          // the close that follows a failed ping is handled by the close path
        }
      }, cfg.heartbeatMs)
    }
    setState(rec, 'connected')
    for (const sub of subs.values()) {
      if (targets(sub, rec)) openSub(rec, conn, sub)
    }
  }

  /** Idempotent: every way a connection ends comes here once. */
  function endConnection(rec: RelayRec, conn: Conn): void {
    if (conn.ended) return
    conn.ended = true
    clearConnectTimer(conn)
    if (conn.heartbeat) clearInterval(conn.heartbeat)
    conn.heartbeat = null
    for (const [subId, nsub] of conn.subs) {
      neutralize(nsub)
      const sub = subs.get(subId)
      if (sub?.ondone) safeCall(() => sub.ondone?.(rec.entry.url), 'ondone')
    }
    conn.subs.clear()
    for (const waiters of conn.pending.values()) for (const w of waiters) w.done({ kind: 'closed' })
    conn.pending.clear()
    for (const wake of [...conn.challengeWaiters]) wake()
    const wasConnected = conn.connected
    conn.connected = false
    if (!conn.graceful && conn.ws && conn.ws.readyState !== WebSocket.CLOSED) conn.ws.terminate()
    if (rec.conn !== conn) return
    rec.conn = null
    if (closed || rec.removed) return

    const detail = conn.socketError ?? conn.closeInfo ?? 'connection closed'
    recordError(rec, wasConnected ? `connection lost: ${detail}` : `connect failed: ${detail}`)
    const stable = wasConnected && conn.openedAt !== null && Date.now() - conn.openedAt >= STABLE_CONNECTION_MS
    rec.failures = stable ? 1 : rec.failures + 1
    const base = Math.min(cfg.maxBackoffMs, cfg.initialBackoffMs * 2 ** Math.min(rec.failures - 1, 30))
    // Equal jitter: never sooner than half the base, so a relay restart is not hit by every
    // client at the same instant, nor retried in a tight loop.
    const delay = Math.round(base / 2 + (Math.random() * base) / 2)
    rec.nextRetryAt = Date.now() + delay
    rec.retryTimer = setTimeout(() => openConnection(rec), delay)
    log.warn(wasConnected ? 'relay disconnected' : 'relay connection failed', {
      relay: rec.entry.url,
      error: detail,
      retry_in_ms: delay,
      failures: rec.failures,
    })
    setState(rec, 'backoff')
  }

  function clearConnectTimer(conn: Conn): void {
    if (conn.connectTimer) clearTimeout(conn.connectTimer)
    conn.connectTimer = null
  }

  /** Close our side: a close frame, then a hard cut if the relay does not answer. */
  function shutConnection(rec: RelayRec, conn: Conn): Promise<void> {
    const ws = conn.ws
    conn.graceful = true
    endConnection(rec, conn)
    conn.relay?.close()
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate()
        resolve()
      }, CLOSE_GRACE_MS)
      ws.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  function startNip11(rec: RelayRec): void {
    const abort = new AbortController()
    rec.nip11Abort = abort
    rec.nip11Promise = fetchRelayInfo(rec.entry.url, {
      timeoutMs: cfg.nip11TimeoutMs,
      signal: abort.signal,
      ...(agent ? { agent } : {}),
    }).then((result) => {
      rec.nip11Abort = null
      if (closed) return
      rec.nip11 = result
      if (result.ok) log.debug('relay information', { relay: rec.entry.url, limits: result.limits })
      else log.debug('no relay information', { relay: rec.entry.url, code: result.code, error: result.message })
    })
  }

  // ---- OK and AUTH ----

  function onOk(conn: Conn, id: string, ok: boolean, message: string): void {
    const waiters = conn.pending.get(id)
    if (!waiters) return
    conn.pending.delete(id)
    for (const w of waiters) w.done(ok ? { kind: 'ok', message } : { kind: 'rejected', message })
  }

  function sendAndAwaitOk(conn: Conn, id: string, frame: string, deadline: number): Promise<OkReply> {
    const relay = conn.relay
    if (conn.ended || !conn.connected || relay === null) return Promise.resolve({ kind: 'closed' })
    const remaining = deadline - Date.now()
    if (remaining <= 0) return Promise.resolve({ kind: 'timeout' })
    return new Promise((resolve) => {
      let waiters = conn.pending.get(id)
      if (!waiters) {
        waiters = new Set()
        conn.pending.set(id, waiters)
      }
      const set = waiters
      const waiter: OkWaiter = {
        done: (reply) => {
          clearTimeout(timer)
          set.delete(waiter)
          if (set.size === 0 && conn.pending.get(id) === set) conn.pending.delete(id)
          resolve(reply)
        },
      }
      const timer = setTimeout(() => waiter.done({ kind: 'timeout' }), remaining)
      set.add(waiter)
      relay.send(frame).catch(() => waiter.done({ kind: 'closed' }))
    })
  }

  function onChallenge(rec: RelayRec, conn: Conn, challenge: string): void {
    if (conn.ended) return
    if (challenge !== conn.challenge && conn.failedChallenge !== null && conn.failedChallenge !== challenge) {
      // A fresh challenge after a failed attempt earns one more try.
      conn.authAttempt = null
      conn.failedChallenge = null
    }
    conn.challenge = challenge
    for (const wake of [...conn.challengeWaiters]) wake()
    if (signAuth && cfg.authOnChallenge && !conn.authed && conn.authAttempt === null) {
      void authenticate(rec, conn, Date.now() + cfg.publishTimeoutMs)
    }
  }

  function waitChallenge(conn: Conn, deadline: number): Promise<void> {
    if (conn.challenge !== null || conn.ended) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        conn.challengeWaiters.delete(done)
        resolve()
      }
      conn.challengeWaiters.add(done)
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()))
    })
  }

  /** One AUTH per challenge; callers share it and each gives up at its own deadline. */
  function authenticate(rec: RelayRec, conn: Conn, deadline: number): Promise<AuthOutcome> {
    if (conn.authed) return Promise.resolve({ ok: true })
    if (!signAuth) return Promise.resolve({ ok: false, message: 'no signer for NIP-42 AUTH' })
    if (conn.authAttempt === null) {
      const attempt = runAuth(rec, conn, signAuth, deadline)
      conn.authAttempt = attempt
      // A relay's refusal stands for the connection (no AUTH loops); our own signer failing
      // (the service has no attestation yet) says nothing about the relay, so the next
      // auth-required may try again with the same challenge.
      void attempt.then((outcome) => {
        if (!outcome.ok && outcome.local === true && conn.authAttempt === attempt) {
          conn.authAttempt = null
          conn.failedChallenge = null
        }
      })
    }
    return withDeadline(conn.authAttempt, deadline, { ok: false, message: 'AUTH timed out' })
  }

  async function runAuth(rec: RelayRec, conn: Conn, sign: SignAuth, deadline: number): Promise<AuthOutcome> {
    await waitChallenge(conn, Math.min(deadline, Date.now() + CHALLENGE_WAIT_MS))
    const challenge = conn.challenge
    const relay = conn.relay
    if (conn.ended || relay === null) return { ok: false, message: 'connection closed' }
    if (challenge === null) return authFailed(rec, conn, null, 'the relay sent no AUTH challenge')
    let event: NostrEvent
    try {
      event = await sign(makeAuthEvent(relay.url, challenge))
    } catch (err) {
      return { ...authFailed(rec, conn, challenge, `signer failed: ${errorText(err)}`), local: true }
    }
    if (!isEvent(event)) return authFailed(rec, conn, challenge, 'signer returned a malformed event')
    const reply = await sendAndAwaitOk(conn, event.id, `["AUTH",${JSON.stringify(event)}]`, deadline)
    if (reply.kind !== 'ok') return authFailed(rec, conn, challenge, describeReply(reply))
    conn.authed = true
    conn.authPubkey = event.pubkey
    log.info('relay authenticated', { relay: rec.entry.url, pubkey: event.pubkey })
    if (options.onStatusChange) safeCall(() => options.onStatusChange?.(snapshot(rec)), 'onStatusChange')
    return { ok: true }
  }

  function authFailed(rec: RelayRec, conn: Conn, challenge: string | null, message: string): { ok: false; message: string } {
    conn.failedChallenge = challenge ?? ''
    if (!conn.ended) recordError(rec, `AUTH failed: ${message}`)
    log.warn('relay AUTH failed', { relay: rec.entry.url, error: message })
    return { ok: false, message }
  }

  // ---- subscriptions ----

  function targets(sub: PoolSub, rec: RelayRec): boolean {
    return sub.targets === null ? rec.entry.read : sub.targets.has(rec.entry.url)
  }

  function openSub(rec: RelayRec, conn: Conn, sub: PoolSub): void {
    const relay = conn.relay
    if (sub.closed || conn.ended || !conn.connected || relay === null) return
    const url = rec.entry.url
    let filters: Filter[]
    try {
      filters = sub.filtersFn()
    } catch (err) {
      log.warn('subscription filters function failed', { relay: url, sub: sub.id, error: err })
      return
    }
    const refuse = (reason: string): void => {
      recordError(rec, `subscription ${sub.id} not sent: ${reason}`)
      safeCall(() => sub.opts.onclosed?.(url, reason), 'onclosed')
      if (sub.ondone) safeCall(() => sub.ondone?.(url), 'ondone')
    }
    if (!Array.isArray(filters) || filters.length === 0) return refuse('no filters')
    const limits = rec.nip11?.ok ? rec.nip11.limits : {}
    if (limits.max_filters !== undefined && filters.length > limits.max_filters) {
      return refuse(`skipped: ${filters.length} filters > max_filters ${limits.max_filters}`)
    }
    const previous = conn.subs.get(sub.id)
    if (previous) {
      conn.subs.delete(sub.id)
      neutralize(previous)
      previous.close()
    }
    if (limits.max_subscriptions !== undefined && conn.subs.size >= limits.max_subscriptions) {
      return refuse(`skipped: max_subscriptions ${limits.max_subscriptions} reached`)
    }
    let nsub: Subscription | undefined = undefined
    try {
      nsub = relay.subscribe(filters, {
        label: 'nec01',
        eoseTimeout: cfg.eoseTimeoutMs,
        alreadyHaveEvent: (id) => sub.seen.has(id),
        onevent: (event) => deliver(sub, event, url),
        oneose: () => safeCall(() => sub.opts.oneose?.(url), 'oneose'),
        onclose: (reason) => {
          if (nsub) onSubClosed(rec, conn, sub, nsub, reason)
        },
      })
    } catch (err) {
      return refuse(`subscribe failed: ${errorText(err)}`)
    }
    conn.subs.set(sub.id, nsub)
    if (conn.authed) conn.sentUnauthed.delete(sub.id)
    else conn.sentUnauthed.add(sub.id)
  }

  function deliver(sub: PoolSub, event: NostrEvent, url: string): void {
    if (sub.closed || sub.seen.has(event.id)) return
    sub.seen.add(event.id)
    if (sub.seen.size > SEEN_IDS_PER_SUBSCRIPTION) {
      const oldest = sub.seen.values().next()
      if (!oldest.done) sub.seen.delete(oldest.value)
    }
    safeCall(() => sub.opts.onevent(event, url), 'onevent')
  }

  /** The relay sent CLOSED (our own closes and disconnects never get here). */
  function onSubClosed(rec: RelayRec, conn: Conn, sub: PoolSub, nsub: Subscription, reason: string): void {
    if (conn.ended || sub.closed || conn.subs.get(sub.id) !== nsub) return
    conn.subs.delete(sub.id)
    neutralize(nsub)
    const url = rec.entry.url
    const why = typeof reason === 'string' ? reason : ''
    // NIP-42 says auth-required:, but relays also answer restricted: to a client that had not
    // authenticated when it asked (nostr-relay refuses DMs so); either is worth one AUTH and a
    // retry. What counts is the state when the REQ went out: the relay may send its CLOSED
    // after our AUTH succeeded, for a REQ it read before.
    const askedUnauthed = conn.sentUnauthed.has(sub.id)
    const authMightHelp = why.startsWith('auth-required:') || (why.startsWith('restricted:') && askedUnauthed)
    if (authMightHelp && signAuth && !conn.authRetried.has(sub.id)) {
      conn.authRetried.add(sub.id)
      void authenticate(rec, conn, Date.now() + cfg.publishTimeoutMs).then((outcome) => {
        if (outcome.ok) return openSub(rec, conn, sub)
        safeCall(() => sub.opts.onclosed?.(url, `${why} (AUTH failed: ${outcome.message})`), 'onclosed')
        if (sub.ondone) safeCall(() => sub.ondone?.(url), 'ondone')
      })
      return
    }
    recordError(rec, `subscription ${sub.id} closed by relay: ${why}`)
    log.warn('subscription closed by relay', { relay: url, sub: sub.id, reason: why })
    safeCall(() => sub.opts.onclosed?.(url, why), 'onclosed')
    if (sub.ondone) safeCall(() => sub.ondone?.(url), 'ondone')
  }

  function closeSub(sub: PoolSub): void {
    if (sub.closed) return
    sub.closed = true
    subs.delete(sub.id)
    for (const rec of recs.values()) {
      const conn = rec.conn
      const nsub = conn?.subs.get(sub.id)
      if (!conn || !nsub) continue
      conn.subs.delete(sub.id)
      neutralize(nsub)
      try {
        nsub.close()
      } catch {
        // the connection is going away anyway
      }
    }
  }

  function resolveTargets(urls: string[] | undefined, fallback: (e: RelayEntry) => boolean): { known: RelayRec[]; unknown: string[] } {
    if (urls === undefined) return { known: [...recs.values()].filter((r) => fallback(r.entry)), unknown: [] }
    const known: RelayRec[] = []
    const unknown: string[] = []
    const seen = new Set<string>()
    for (const raw of urls) {
      const url = normalizeRelayUrl(raw) ?? raw
      if (seen.has(url)) continue
      seen.add(url)
      const rec = recs.get(url)
      if (rec) known.push(rec)
      else unknown.push(url)
    }
    return { known, unknown }
  }

  // ---- public API ----

  async function publishTo(rec: RelayRec, event: NostrEvent, frame: string, bytes: number, deadline: number): Promise<PublishResult> {
    const url = rec.entry.url
    const result = (code: PublishCode, message: string): PublishResult => ({ url, ok: code === 'ok', code, message })
    if (!(await waitConnected(rec, deadline))) {
      return result('not-connected', rec.lastError ? `not connected: ${rec.lastError}` : 'not connected')
    }
    if (rec.nip11Promise) await withDeadline(rec.nip11Promise, deadline, undefined)
    const max = rec.nip11?.ok ? rec.nip11.limits.max_message_length : undefined
    if (max !== undefined && bytes > max) {
      return result('too-large', `skipped: too large (${bytes} bytes > max_message_length ${max})`)
    }
    const conn = rec.conn
    if (!conn || !conn.connected) return result('not-connected', 'not connected')
    let reply = await sendAndAwaitOk(conn, event.id, frame, deadline)
    if (reply.kind === 'rejected' && reply.message.startsWith('auth-required:') && signAuth && !conn.ended) {
      const auth = await authenticate(rec, conn, deadline)
      if (!auth.ok) return result('auth-failed', `${reply.message} (AUTH failed: ${auth.message})`)
      reply = await sendAndAwaitOk(conn, event.id, frame, deadline)
    }
    switch (reply.kind) {
      case 'ok':
        return result('ok', reply.message)
      case 'rejected':
        return result('rejected', reply.message)
      case 'timeout':
        return result('timeout', 'no OK from the relay in time')
      case 'closed':
        return result('connection-closed', rec.lastError ?? 'connection closed before OK')
    }
  }

  async function publish(event: NostrEvent, opts: PublishOptions = {}): Promise<PublishReport> {
    const { known, unknown } = resolveTargets(opts.relays, (e) => e.write)
    const report = (rec: RelayRec | string, code: PublishCode, message: string): PublishResult => ({
      url: typeof rec === 'string' ? rec : rec.entry.url,
      ok: false,
      code,
      message,
    })
    const missing = unknown.map((url) => report(url, 'not-in-pool', 'relay is not in the pool'))
    if (closed) return [...known.map((r) => report(r, 'pool-closed', 'the pool is closed')), ...missing]
    if (!isEvent(event)) return [...known.map((r) => report(r, 'invalid-event', 'not a signed Nostr event')), ...missing]
    const frame = `["EVENT",${JSON.stringify(event)}]`
    const bytes = Buffer.byteLength(frame, 'utf8')
    const deadline = Date.now() + (opts.timeoutMs ?? cfg.publishTimeoutMs)
    const results = await Promise.all(known.map((rec) => publishTo(rec, event, frame, bytes, deadline)))
    for (const r of results) {
      if (!r.ok) log.debug('publish not accepted', { relay: r.url, event_id: event.id, code: r.code, message: r.message })
    }
    return [...results, ...missing]
  }

  function subscribe(filters: Filter[] | (() => Filter[]), opts: SubscribeOptions): PoolSubscription {
    return subscribeInternal(filters, opts, undefined)
  }

  function subscribeInternal(filters: Filter[] | (() => Filter[]), opts: SubscribeOptions, ondone: ((url: string) => void) | undefined): PoolSubscription {
    const id = `sub${++subCounter}`
    const sub: PoolSub = {
      id,
      filtersFn: typeof filters === 'function' ? filters : () => filters,
      opts,
      targets: null,
      seen: new Set(),
      closed: closed,
      ...(ondone ? { ondone } : {}),
    }
    const handle: PoolSubscription = { id, close: () => closeSub(sub) }
    if (closed) return handle
    if (opts.relays !== undefined) {
      const { known, unknown } = resolveTargets(opts.relays, () => false)
      if (unknown.length > 0) log.warn('subscription names relays not in the pool', { sub: id, relays: unknown })
      sub.targets = new Set(known.map((r) => r.entry.url))
    }
    subs.set(id, sub)
    for (const rec of recs.values()) {
      if (rec.conn?.connected && targets(sub, rec)) openSub(rec, rec.conn, sub)
    }
    return handle
  }

  async function fetchEvents(filters: Filter[], opts: FetchOptions = {}): Promise<NostrEvent[]> {
    if (closed) return []
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULTS.fetchTimeoutMs)
    const { known } = resolveTargets(opts.relays, (e) => e.read)
    const up = await Promise.all(known.map((rec) => waitConnected(rec, deadline)))
    const live = known.filter((_, i) => up[i])
    if (live.length === 0 || closed) return []
    return new Promise((resolve) => {
      const events: NostrEvent[] = []
      const waiting = new Set(live.map((r) => r.entry.url))
      let finished = false
      let handle: PoolSubscription | undefined
      const finish = (): void => {
        if (finished) return
        finished = true
        clearTimeout(timer)
        handle?.close()
        resolve(events)
      }
      const doneWith = (url: string): void => {
        waiting.delete(url)
        if (waiting.size === 0) finish()
      }
      const timer = setTimeout(finish, Math.max(0, deadline - Date.now()))
      handle = subscribeInternal(
        filters,
        { relays: live.map((r) => r.entry.url), onevent: (ev) => events.push(ev), oneose: doneWith },
        doneWith,
      )
      if (finished) handle.close()
    })
  }

  function addRelay(entry: RelayEntry): string {
    const url = normalizeRelayUrl(entry.url)
    if (url === null) throw new RelayPoolError('pool/bad-relay-url', `not a ws:// or wss:// URL: ${JSON.stringify(entry.url)}`)
    if (closed) throw new RelayPoolError('pool/closed', 'the pool is closed')
    const isNew = !recs.has(url)
    const rec = addRecord(entry)
    if (isNew) openConnection(rec)
    else if (rec.conn?.connected) {
      for (const sub of subs.values()) {
        if (targets(sub, rec) && !rec.conn.subs.has(sub.id)) openSub(rec, rec.conn, sub)
      }
    }
    return rec.entry.url
  }

  function removeRelay(url: string): boolean {
    const rec = recs.get(normalizeRelayUrl(url) ?? url)
    if (!rec) return false
    rec.removed = true
    recs.delete(rec.entry.url)
    retire(rec)
    return true
  }

  /** Stops everything a record owns; the returned promise waits for its socket to close. */
  function retire(rec: RelayRec): Promise<void> {
    if (rec.retryTimer) clearTimeout(rec.retryTimer)
    rec.retryTimer = null
    rec.nextRetryAt = null
    rec.nip11Abort?.abort()
    const conn = rec.conn
    const shut = conn ? shutConnection(rec, conn) : Promise.resolve()
    rec.conn = null
    setState(rec, 'closed')
    return shut
  }

  function settle(timeoutMs = DEFAULTS.connectTimeoutMs): Promise<RelayStatus[]> {
    const deadline = Date.now() + timeoutMs
    return Promise.all([...recs.values()].map((rec) => waitConnected(rec, deadline))).then(() => status())
  }

  function status(): RelayStatus[] {
    return [...recs.values()].map(snapshot)
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      closed = true
      for (const sub of [...subs.values()]) closeSub(sub)
      await Promise.all([...recs.values()].map(retire))
      ownAgent?.destroy()
      log.debug('relay pool closed')
    })()
    return closing
  }

  return { status, settle, publish, subscribe, fetchEvents, addRelay, removeRelay, close }
}

/**
 * Make a nostr-tools subscription inert before it is closed: its EOSE timer is cleared (nostr-tools
 * leaves it running after close) and no callback of ours fires again.
 */
function neutralize(nsub: Subscription): void {
  nsub.onevent = () => undefined
  nsub.onclose = undefined
  nsub.oneose = undefined
  if (!nsub.eosed) nsub.receivedEose()
}

function withDeadline<T>(promise: Promise<T>, deadline: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), Math.max(0, deadline - Date.now()))
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      () => {
        clearTimeout(timer)
        resolve(fallback)
      },
    )
  })
}


function describeReply(reply: OkReply): string {
  switch (reply.kind) {
    case 'ok':
      return 'accepted'
    case 'rejected':
      return reply.message || 'rejected without a reason'
    case 'timeout':
      return 'no OK in time'
    case 'closed':
      return 'connection closed'
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message
  if (typeof err === 'string') return err
  return String(err)
}

