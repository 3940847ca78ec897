// One relay's connections: open, heartbeat, end, reconnect with backoff, close, and the NIP-11
// fetch that goes with a connection. Each connection is a fresh PoolRelay; this module owns
// every connection timer (nostr-tools' own reconnect and ping leak timers on failure).
import { WebSocket } from 'ws'
import { fetchRelayInfo } from './nip11.js'
import { PoolRelay, type RelayHooks, type WebSocketImpl } from './pool-relay.js'
import { safeCall, type Conn, type PoolConfig, type PoolContext, type RelayRec } from './pool-context.js'
import { errorText } from '../../nec01/errors.js'
import { onChallenge, onOk } from './pool-auth.js'
import { recordError, setState } from './pool-state.js'
import { neutralize, openSub, targets } from './pool-subscriptions.js'

/** a connection that lived this long resets the backoff; shorter ones count as failures */
export const STABLE_CONNECTION_MS = 30_000
/** grace for a relay to answer our close frame before the socket is cut */
const CLOSE_GRACE_MS = 1_000

function newConn(): Conn {
  return {
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
}

/** Starts a connection attempt for the record (unless the pool or the record is closed). */
export function openConnection(ctx: PoolContext, rec: RelayRec): void {
  if (ctx.closed || rec.removed) return
  rec.retryTimer = null
  rec.nextRetryAt = null
  const conn = newConn()
  rec.conn = conn
  setState(ctx, rec, 'connecting')
  if (ctx.cfg.nip11 && (rec.nip11 === null ? rec.nip11Promise === null : !rec.nip11.ok)) startNip11(ctx, rec)
  const hooks = relayHooks(ctx, rec, conn)
  let relay: PoolRelay
  try {
    relay = conn.relay = new PoolRelay(rec.entry.url, socketClass(ctx, conn), hooks)
  } catch (err) {
    conn.socketError = errorText(err)
    endConnection(ctx, rec, conn)
    return
  }
  relay.onclose = () => endConnection(ctx, rec, conn)
  armConnectTimer(ctx, conn)
  relay.connect().then(
    () => connectionOpened(ctx, rec, conn),
    (err: unknown) => {
      conn.socketError ??= errorText(err)
      endConnection(ctx, rec, conn)
    },
  )
}

function relayHooks(ctx: PoolContext, rec: RelayRec, conn: Conn): RelayHooks {
  return {
    onChallenge: (challenge) => onChallenge(ctx, rec, conn, challenge),
    onOk: (id, ok, message) => onOk(conn, id, ok, message),
    onNotice: (message) => ctx.log.info('relay notice', { relay: rec.entry.url, notice: message.slice(0, 300) }),
    onDropped: (reason) => ctx.log.debug('dropped relay message', { relay: rec.entry.url, reason }),
  }
}

function armConnectTimer(ctx: PoolContext, conn: Conn): void {
  conn.connectTimer = setTimeout(() => {
    conn.connectTimer = null
    conn.socketError ??= `connect timed out after ${ctx.cfg.connectTimeoutMs} ms`
    conn.ws?.terminate()
  }, ctx.cfg.connectTimeoutMs)
}

function clearConnectTimer(conn: Conn): void {
  if (conn.connectTimer) clearTimeout(conn.connectTimer)
  conn.connectTimer = null
}

/** A `ws` class bound to this connection: proxy agent, limits, and listeners that record why it failed. */
function socketClass(ctx: PoolContext, conn: Conn): WebSocketImpl {
  const wsOptions = {
    maxPayload: ctx.cfg.maxPayload,
    handshakeTimeout: ctx.cfg.connectTimeoutMs,
    perMessageDeflate: false,
    ...(ctx.agent ? { agent: ctx.agent } : {}),
  }
  class PoolSocket extends WebSocket {
    constructor(url: string) {
      super(url, wsOptions)
      conn.ws = this
      watchSocket(conn, this)
    }
  }
  return PoolSocket as unknown as WebSocketImpl
}

function watchSocket(conn: Conn, ws: WebSocket): void {
  // Always listening: ws emits 'error' after nostr-tools has detached its handler (e.g.
  // closing a socket still connecting), and an unheard 'error' would crash the process.
  ws.on('error', (err: Error) => {
    conn.socketError ??= err.message
  })
  ws.on('close', (code: number, reason: Buffer) => {
    const why = reason.toString('utf8').slice(0, 200)
    conn.closeInfo = `closed (code ${code}${why ? `: ${why}` : ''})`
  })
  ws.on('pong', () => {
    conn.awaitingPong = false
  })
  ws.on('message', () => {
    conn.awaitingPong = false
  })
}

function connectionOpened(ctx: PoolContext, rec: RelayRec, conn: Conn): void {
  if (conn.ended || rec.conn !== conn) return
  clearConnectTimer(conn)
  conn.connected = true
  conn.openedAt = Date.now()
  ctx.log.info('relay connected', { relay: rec.entry.url })
  if (ctx.cfg.heartbeatMs > 0) startHeartbeat(conn, ctx.cfg.heartbeatMs)
  setState(ctx, rec, 'connected')
  for (const sub of ctx.subs.values()) {
    if (targets(sub, rec)) openSub(ctx, rec, conn, sub)
  }
}

/** A ping every interval; a relay that has not answered the previous one is cut. */
function startHeartbeat(conn: Conn, intervalMs: number): void {
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
  }, intervalMs)
}

/** Idempotent: every way a connection ends comes here once. */
export function endConnection(ctx: PoolContext, rec: RelayRec, conn: Conn): void {
  if (conn.ended) return
  conn.ended = true
  clearConnectTimer(conn)
  if (conn.heartbeat) clearInterval(conn.heartbeat)
  conn.heartbeat = null
  releaseSubscriptions(ctx, rec, conn)
  releaseWaiters(conn)
  const wasConnected = conn.connected
  conn.connected = false
  if (!conn.graceful && conn.ws && conn.ws.readyState !== WebSocket.CLOSED) conn.ws.terminate()
  if (rec.conn !== conn) return
  rec.conn = null
  if (ctx.closed || rec.removed) return
  scheduleReconnect(ctx, rec, conn, wasConnected)
}

/** The connection's subscriptions go inert; each pool subscription hears its relay is done for now. */
function releaseSubscriptions(ctx: PoolContext, rec: RelayRec, conn: Conn): void {
  for (const [subId, nsub] of conn.subs) {
    neutralize(nsub)
    const sub = ctx.subs.get(subId)
    if (sub?.ondone) safeCall(ctx, () => sub.ondone?.(rec.entry.url), 'ondone')
  }
  conn.subs.clear()
}

/** Everyone waiting for an OK or a challenge on this connection stops waiting. */
function releaseWaiters(conn: Conn): void {
  for (const waiters of conn.pending.values()) for (const w of waiters) w.done({ kind: 'closed' })
  conn.pending.clear()
  for (const wake of [...conn.challengeWaiters]) wake()
}

function scheduleReconnect(ctx: PoolContext, rec: RelayRec, conn: Conn, wasConnected: boolean): void {
  const detail = conn.socketError ?? conn.closeInfo ?? 'connection closed'
  recordError(rec, wasConnected ? `connection lost: ${detail}` : `connect failed: ${detail}`)
  rec.failures = failuresAfter(rec.failures, wasConnected ? conn.openedAt : null, Date.now())
  const delay = backoffDelay(rec.failures, ctx.cfg, Math.random())
  rec.nextRetryAt = Date.now() + delay
  rec.retryTimer = setTimeout(() => openConnection(ctx, rec), delay)
  ctx.log.warn(wasConnected ? 'relay disconnected' : 'relay connection failed', {
    relay: rec.entry.url,
    error: detail,
    retry_in_ms: delay,
    failures: rec.failures,
  })
  setState(ctx, rec, 'backoff')
}

/**
 * Consecutive failures once a connection ended: one that had been up since `openedAt` for
 * STABLE_CONNECTION_MS starts a new count, anything else adds one. `openedAt` is null for an
 * attempt that never connected.
 */
export function failuresAfter(previous: number, openedAt: number | null, now: number): number {
  const stable = openedAt !== null && now - openedAt >= STABLE_CONNECTION_MS
  return stable ? 1 : previous + 1
}

/**
 * The wait before the next attempt after `failures` (≥ 1) failures: the base doubles from
 * initialBackoffMs up to maxBackoffMs, and `random` (0 ≤ random < 1) picks a point in its
 * upper half. Equal jitter: never sooner than half the base, so a relay restart is not hit
 * by every client at the same instant, nor retried in a tight loop.
 */
export function backoffDelay(failures: number, cfg: Pick<PoolConfig, 'initialBackoffMs' | 'maxBackoffMs'>, random: number): number {
  const base = Math.min(cfg.maxBackoffMs, cfg.initialBackoffMs * 2 ** Math.min(failures - 1, 30))
  return Math.round(base / 2 + (random * base) / 2)
}

/** Close our side: a close frame, then a hard cut if the relay does not answer. */
function shutConnection(ctx: PoolContext, rec: RelayRec, conn: Conn): Promise<void> {
  const ws = conn.ws
  conn.graceful = true
  endConnection(ctx, rec, conn)
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

/** Stops everything a record owns; the returned promise waits for its socket to close. */
export function retire(ctx: PoolContext, rec: RelayRec): Promise<void> {
  if (rec.retryTimer) clearTimeout(rec.retryTimer)
  rec.retryTimer = null
  rec.nextRetryAt = null
  rec.nip11Abort?.abort()
  const conn = rec.conn
  const shut = conn ? shutConnection(ctx, rec, conn) : Promise.resolve()
  rec.conn = null
  setState(ctx, rec, 'closed')
  return shut
}

function startNip11(ctx: PoolContext, rec: RelayRec): void {
  const abort = new AbortController()
  rec.nip11Abort = abort
  rec.nip11Promise = fetchRelayInfo(rec.entry.url, {
    timeoutMs: ctx.cfg.nip11TimeoutMs,
    signal: abort.signal,
    ...(ctx.agent ? { agent: ctx.agent } : {}),
  }).then((result) => {
    rec.nip11Abort = null
    if (ctx.closed) return
    rec.nip11 = result
    if (result.ok) ctx.log.debug('relay information', { relay: rec.entry.url, limits: result.limits })
    else ctx.log.debug('no relay information', { relay: rec.entry.url, code: result.code, error: result.message })
  })
}
