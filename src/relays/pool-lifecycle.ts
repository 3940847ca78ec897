// Changing the pool while it runs (adding and removing relays) and closing it.
import { normalizeRelayUrl, type RelayEntry } from './config.js'
import type { PoolContext } from './pool-context.js'
import { openConnection, retire } from './pool-connection.js'
import { addRecord } from './pool-state.js'
import { closeSub, openSub, targets } from './pool-subscriptions.js'
import { RelayPoolError } from './pool-types.js'

/** Adds a relay (or changes its markers) and returns its normalised URL. */
export function addRelay(ctx: PoolContext, entry: RelayEntry): string {
  const url = normalizeRelayUrl(entry.url)
  if (url === null) throw new RelayPoolError('pool/bad-relay-url', `not a ws:// or wss:// URL: ${JSON.stringify(entry.url)}`)
  if (ctx.closed) throw new RelayPoolError('pool/closed', 'the pool is closed')
  const isNew = !ctx.recs.has(url)
  const rec = addRecord(ctx, entry)
  if (isNew) openConnection(ctx, rec)
  else if (rec.conn?.connected) {
    // new markers may make the relay a target of subscriptions it does not serve yet
    for (const sub of ctx.subs.values()) {
      if (targets(sub, rec) && !rec.conn.subs.has(sub.id)) openSub(ctx, rec, rec.conn, sub)
    }
  }
  return rec.entry.url
}

export function removeRelay(ctx: PoolContext, url: string): boolean {
  const rec = ctx.recs.get(normalizeRelayUrl(url) ?? url)
  if (!rec) return false
  rec.removed = true
  ctx.recs.delete(rec.entry.url)
  void retire(ctx, rec)
  return true
}

/** Closes every subscription and connection; the same promise for every call. */
export function closePool(ctx: PoolContext): Promise<void> {
  ctx.closing ??= (async () => {
    ctx.closed = true
    for (const sub of [...ctx.subs.values()]) closeSub(ctx, sub)
    await Promise.all([...ctx.recs.values()].map((rec) => retire(ctx, rec)))
    ctx.ownAgent?.destroy()
    ctx.log.debug('relay pool closed')
  })()
  return ctx.closing
}
