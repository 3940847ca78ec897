// The pool's relay records: adding them, their state and its waiters, and the health snapshot.
import { normalizeRelayUrl, type RelayEntry } from './config.js'
import { safeCall, type PoolContext, type RelayRec } from './pool-context.js'
import { RelayPoolError, type RelayState, type RelayStatus } from './pool-types.js'

/** error messages kept for health are cut to this many characters */
const MAX_ERROR_LENGTH = 500

function newRecord(url: string, entry: RelayEntry): RelayRec {
  return {
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
}

/** The record for the entry's URL, made if new; an existing one takes the entry's markers. */
export function addRecord(ctx: PoolContext, entry: RelayEntry): RelayRec {
  const url = normalizeRelayUrl(entry.url)
  if (url === null) throw new RelayPoolError('pool/bad-relay-url', `not a ws:// or wss:// URL: ${JSON.stringify(entry.url)}`)
  const existing = ctx.recs.get(url)
  if (existing) {
    existing.entry = { url, read: entry.read, write: entry.write }
    return existing
  }
  const rec = newRecord(url, entry)
  ctx.recs.set(url, rec)
  return rec
}

export function setState(ctx: PoolContext, rec: RelayRec, state: RelayState): void {
  rec.state = state
  for (const wake of [...rec.stateWaiters]) wake()
  notifyStatus(ctx, rec)
}

export function notifyStatus(ctx: PoolContext, rec: RelayRec): void {
  if (ctx.onStatusChange) safeCall(ctx, () => ctx.onStatusChange?.(snapshot(rec)), 'onStatusChange')
}

export function recordError(rec: RelayRec, message: string): void {
  rec.lastError = message.length > MAX_ERROR_LENGTH ? message.slice(0, MAX_ERROR_LENGTH - 3) + '...' : message
  rec.lastErrorAt = Date.now()
}

export function snapshot(rec: RelayRec): RelayStatus {
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

export function status(ctx: PoolContext): RelayStatus[] {
  return [...ctx.recs.values()].map(snapshot)
}

/** true once the relay is connected, false if the attempt fails or the deadline passes */
export function waitConnected(rec: RelayRec, deadline: number): Promise<boolean> {
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

/** resolves once no relay is still making its current connection attempt (or at the timeout) */
export function settle(ctx: PoolContext, timeoutMs: number): Promise<RelayStatus[]> {
  const deadline = Date.now() + timeoutMs
  return Promise.all([...ctx.recs.values()].map((rec) => waitConnected(rec, deadline))).then(() => status(ctx))
}

/**
 * The records `urls` names (normalised, each once) and the URLs not in the pool; without
 * `urls`, every record whose entry passes `fallback`.
 */
export function resolveTargets(
  recs: ReadonlyMap<string, RelayRec>,
  urls: string[] | undefined,
  fallback: (e: RelayEntry) => boolean,
): { known: RelayRec[]; unknown: string[] } {
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

/** `promise`'s value, or `fallback` if it rejects or the deadline passes first */
export function withDeadline<T>(promise: Promise<T>, deadline: number, fallback: T): Promise<T> {
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
