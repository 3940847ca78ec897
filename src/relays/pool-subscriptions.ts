// Pool subscriptions: one REQ per connected target relay, re-sent after each reconnect, events
// deduplicated across relays, and a relay's CLOSED answered with one AUTH and a retry when
// that might help.
import type { Subscription } from 'nostr-tools/abstract-relay'
import { createLru } from '../../nec01/lru.js'
import type { PoolRelay } from './pool-relay.js'
import type { RelayLimits } from './nip11.js'
import { DEFAULTS, safeCall, type Conn, type PoolContext, type PoolSub, type RelayRec } from './pool-context.js'
import { errorText } from '../../nec01/errors.js'
import { authenticate } from './pool-auth.js'
import { recordError, resolveTargets, waitConnected } from './pool-state.js'
import type { FetchOptions, Filter, NostrEvent, PoolSubscription, SubscribeOptions } from './pool-types.js'

const SEEN_IDS_PER_SUBSCRIPTION = 10_000

/** Does this subscription want this relay: its explicit targets, or else every read relay. */
export function targets(sub: PoolSub, rec: RelayRec): boolean {
  return sub.targets === null ? rec.entry.read : sub.targets.has(rec.entry.url)
}

/**
 * Make a nostr-tools subscription inert before it is closed: its EOSE timer is cleared (nostr-tools
 * leaves it running after close) and no callback of ours fires again.
 */
export function neutralize(nsub: Subscription): void {
  nsub.onevent = () => undefined
  nsub.onclose = undefined
  nsub.oneose = undefined
  if (!nsub.eosed) nsub.receivedEose()
}

/** Why these filters cannot be sent to a relay with these limits, or null if they can. */
export function filterProblem(filters: unknown, limits: RelayLimits): string | null {
  if (!Array.isArray(filters) || filters.length === 0) return 'no filters'
  if (limits.max_filters !== undefined && filters.length > limits.max_filters) {
    return `skipped: ${filters.length} filters > max_filters ${limits.max_filters}`
  }
  return null
}

/** Sends the subscription's REQ on this connection, replacing any it had there. */
export function openSub(ctx: PoolContext, rec: RelayRec, conn: Conn, sub: PoolSub): void {
  const relay = conn.relay
  if (sub.closed || conn.ended || !conn.connected || relay === null) return
  const filters = currentFilters(ctx, rec, sub)
  if (filters === null) return
  const limits = rec.nip11?.ok ? rec.nip11.limits : {}
  const problem = filterProblem(filters, limits)
  if (problem !== null) return refuseSub(ctx, rec, sub, problem)
  dropPrevious(conn, sub.id)
  if (limits.max_subscriptions !== undefined && conn.subs.size >= limits.max_subscriptions) {
    return refuseSub(ctx, rec, sub, `skipped: max_subscriptions ${limits.max_subscriptions} reached`)
  }
  sendReq(ctx, rec, conn, relay, sub, filters)
}

/** the filters for this (re)subscription, or null when the caller's function threw */
function currentFilters(ctx: PoolContext, rec: RelayRec, sub: PoolSub): Filter[] | null {
  try {
    return sub.filtersFn()
  } catch (err) {
    ctx.log.warn('subscription filters function failed', { relay: rec.entry.url, sub: sub.id, error: err })
    return null
  }
}

function dropPrevious(conn: Conn, subId: string): void {
  const previous = conn.subs.get(subId)
  if (!previous) return
  conn.subs.delete(subId)
  neutralize(previous)
  previous.close()
}

function refuseSub(ctx: PoolContext, rec: RelayRec, sub: PoolSub, reason: string): void {
  recordError(rec, `subscription ${sub.id} not sent: ${reason}`)
  subEnded(ctx, sub, rec.entry.url, reason)
}

/** The relay will not serve the subscription (for now): the caller's onclosed, then ondone. */
function subEnded(ctx: PoolContext, sub: PoolSub, url: string, reason: string): void {
  safeCall(ctx, () => sub.opts.onclosed?.(url, reason), 'onclosed')
  if (sub.ondone) safeCall(ctx, () => sub.ondone?.(url), 'ondone')
}

function sendReq(ctx: PoolContext, rec: RelayRec, conn: Conn, relay: PoolRelay, sub: PoolSub, filters: Filter[]): void {
  const url = rec.entry.url
  let nsub: Subscription | undefined = undefined
  try {
    nsub = relay.subscribe(filters, {
      label: 'nec01',
      eoseTimeout: ctx.cfg.eoseTimeoutMs,
      alreadyHaveEvent: (id) => sub.seen.has(id),
      onevent: (event) => deliver(ctx, sub, event, url),
      oneose: () => safeCall(ctx, () => sub.opts.oneose?.(url), 'oneose'),
      onclose: (reason) => {
        if (nsub) onSubClosed(ctx, rec, conn, sub, nsub, reason)
      },
    })
  } catch (err) {
    return refuseSub(ctx, rec, sub, `subscribe failed: ${errorText(err)}`)
  }
  conn.subs.set(sub.id, nsub)
  if (conn.authed) conn.sentUnauthed.delete(sub.id)
  else conn.sentUnauthed.add(sub.id)
}

/** Hands an event to the caller once, whichever relays it comes from. */
export function deliver(ctx: PoolContext, sub: PoolSub, event: NostrEvent, url: string): void {
  if (sub.closed || sub.seen.has(event.id)) return
  sub.seen.set(event.id, true)
  safeCall(ctx, () => sub.opts.onevent(event, url), 'onevent')
}

/** The relay sent CLOSED (our own closes and disconnects never get here). */
function onSubClosed(ctx: PoolContext, rec: RelayRec, conn: Conn, sub: PoolSub, nsub: Subscription, reason: string): void {
  if (conn.ended || sub.closed || conn.subs.get(sub.id) !== nsub) return
  conn.subs.delete(sub.id)
  neutralize(nsub)
  const url = rec.entry.url
  const why = typeof reason === 'string' ? reason : ''
  if (authMightHelp(why, conn.sentUnauthed.has(sub.id)) && ctx.signAuth && !conn.authRetried.has(sub.id)) {
    conn.authRetried.add(sub.id)
    void authenticate(ctx, rec, conn, Date.now() + ctx.cfg.publishTimeoutMs).then((outcome) => {
      if (outcome.ok) return openSub(ctx, rec, conn, sub)
      subEnded(ctx, sub, url, `${why} (AUTH failed: ${outcome.message})`)
    })
    return
  }
  recordError(rec, `subscription ${sub.id} closed by relay: ${why}`)
  ctx.log.warn('subscription closed by relay', { relay: url, sub: sub.id, reason: why })
  subEnded(ctx, sub, url, why)
}

/**
 * NIP-42 says auth-required:, but relays also answer restricted: to a client that had not
 * authenticated when it asked (nostr-relay refuses DMs so); either is worth one AUTH and a
 * retry. What counts is the state when the REQ went out (`askedUnauthed`): the relay may send
 * its CLOSED after our AUTH succeeded, for a REQ it read before.
 */
export function authMightHelp(reason: string, askedUnauthed: boolean): boolean {
  return reason.startsWith('auth-required:') || (reason.startsWith('restricted:') && askedUnauthed)
}

export function closeSub(ctx: PoolContext, sub: PoolSub): void {
  if (sub.closed) return
  sub.closed = true
  ctx.subs.delete(sub.id)
  for (const rec of ctx.recs.values()) {
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

/** A pool subscription, sent at once to every connected target; `ondone` is internal (fetchEvents). */
export function subscribe(
  ctx: PoolContext,
  filters: Filter[] | (() => Filter[]),
  opts: SubscribeOptions,
  ondone?: (url: string) => void,
): PoolSubscription {
  const id = `sub${++ctx.subCounter}`
  const sub: PoolSub = {
    id,
    filtersFn: typeof filters === 'function' ? filters : () => filters,
    opts,
    targets: null,
    seen: createLru(SEEN_IDS_PER_SUBSCRIPTION),
    closed: ctx.closed,
    ...(ondone ? { ondone } : {}),
  }
  const handle: PoolSubscription = { id, close: () => closeSub(ctx, sub) }
  if (ctx.closed) return handle
  if (opts.relays !== undefined) sub.targets = explicitTargets(ctx, id, opts.relays)
  ctx.subs.set(id, sub)
  for (const rec of ctx.recs.values()) {
    if (rec.conn?.connected && targets(sub, rec)) openSub(ctx, rec, rec.conn, sub)
  }
  return handle
}

function explicitTargets(ctx: PoolContext, id: string, relays: string[]): Set<string> {
  const { known, unknown } = resolveTargets(ctx.recs, relays, () => false)
  if (unknown.length > 0) ctx.log.warn('subscription names relays not in the pool', { sub: id, relays: unknown })
  return new Set(known.map((r) => r.entry.url))
}

/** stored events from every target relay, until each sent EOSE or the timeout */
export async function fetchEvents(ctx: PoolContext, filters: Filter[], opts: FetchOptions = {}): Promise<NostrEvent[]> {
  if (ctx.closed) return []
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULTS.fetchTimeoutMs)
  const { known } = resolveTargets(ctx.recs, opts.relays, (e) => e.read)
  const up = await Promise.all(known.map((rec) => waitConnected(rec, deadline)))
  const live = known.filter((_, i) => up[i])
  if (live.length === 0 || ctx.closed) return []
  return collectStored(ctx, filters, live, deadline)
}

/** Events until every relay in `live` is done with this REQ (EOSE, CLOSED, disconnect) or the deadline. */
function collectStored(ctx: PoolContext, filters: Filter[], live: RelayRec[], deadline: number): Promise<NostrEvent[]> {
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
    const relays = live.map((r) => r.entry.url)
    handle = subscribe(ctx, filters, { relays, onevent: (ev) => events.push(ev), oneose: doneWith }, doneWith)
    if (finished) handle.close()
  })
}
