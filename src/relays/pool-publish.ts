// Publishing: one EVENT frame to every target relay, each answered by its own OK (or the reason
// nothing was sent), with one AUTH and a resend when a relay says auth-required.
import { isEvent } from './pool-relay.js'
import type { OkReply, PoolContext, RelayRec } from './pool-context.js'
import { authenticate, sendAndAwaitOk } from './pool-auth.js'
import { resolveTargets, waitConnected, withDeadline } from './pool-state.js'
import type { NostrEvent, PublishCode, PublishOptions, PublishReport, PublishResult } from './pool-types.js'

export async function publish(ctx: PoolContext, event: NostrEvent, opts: PublishOptions = {}): Promise<PublishReport> {
  const { known, unknown } = resolveTargets(ctx.recs, opts.relays, (e) => e.write)
  const missing = unknown.map((url) => result(url, 'not-in-pool', 'relay is not in the pool'))
  if (ctx.closed) return [...known.map((r) => result(r.entry.url, 'pool-closed', 'the pool is closed')), ...missing]
  if (!isEvent(event)) return [...known.map((r) => result(r.entry.url, 'invalid-event', 'not a signed Nostr event')), ...missing]
  const frame = `["EVENT",${JSON.stringify(event)}]`
  const bytes = Buffer.byteLength(frame, 'utf8')
  const deadline = Date.now() + (opts.timeoutMs ?? ctx.cfg.publishTimeoutMs)
  const results = await Promise.all(known.map((rec) => publishTo(ctx, rec, event, frame, bytes, deadline)))
  for (const r of results) {
    if (!r.ok) ctx.log.debug('publish not accepted', { relay: r.url, event_id: event.id, code: r.code, message: r.message })
  }
  return [...results, ...missing]
}

function result(url: string, code: PublishCode, message: string): PublishResult {
  return { url, ok: code === 'ok', code, message }
}

async function publishTo(ctx: PoolContext, rec: RelayRec, event: NostrEvent, frame: string, bytes: number, deadline: number): Promise<PublishResult> {
  const url = rec.entry.url
  if (!(await waitConnected(rec, deadline))) {
    return result(url, 'not-connected', rec.lastError ? `not connected: ${rec.lastError}` : 'not connected')
  }
  if (rec.nip11Promise) await withDeadline(rec.nip11Promise, deadline, undefined)
  const max = rec.nip11?.ok ? rec.nip11.limits.max_message_length : undefined
  if (max !== undefined && bytes > max) {
    return result(url, 'too-large', `skipped: too large (${bytes} bytes > max_message_length ${max})`)
  }
  const conn = rec.conn
  if (!conn || !conn.connected) return result(url, 'not-connected', 'not connected')
  let reply = await sendAndAwaitOk(conn, event.id, frame, deadline)
  if (reply.kind === 'rejected' && reply.message.startsWith('auth-required:') && ctx.signAuth && !conn.ended) {
    const auth = await authenticate(ctx, rec, conn, deadline)
    if (!auth.ok) return result(url, 'auth-failed', `${reply.message} (AUTH failed: ${auth.message})`)
    reply = await sendAndAwaitOk(conn, event.id, frame, deadline)
  }
  return replyResult(rec, reply)
}

/** The publish result for a relay's answer (or its silence). */
export function replyResult(rec: RelayRec, reply: OkReply): PublishResult {
  const url = rec.entry.url
  switch (reply.kind) {
    case 'ok':
      return result(url, 'ok', reply.message)
    case 'rejected':
      return result(url, 'rejected', reply.message)
    case 'timeout':
      return result(url, 'timeout', 'no OK from the relay in time')
    case 'closed':
      return result(url, 'connection-closed', rec.lastError ?? 'connection closed before OK')
  }
}
