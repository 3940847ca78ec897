// Requests in: subscriptions for the three transports, then for each event the same
// gauntlet — size, duplicate, expiry, addressee, signature, rate, decryption — before a
// command runs and its reply goes out. Anything malformed is dropped and counted; nothing
// malformed ever gets a reply, and no event can throw out of here.
import * as kinds from 'nostr-tools/kinds'
import { getEventHash } from 'nostr-tools/pure'
import type { Filter } from 'nostr-tools/filter'
import { parseRpcRequest, RPC_KIND, type RpcErrorCode } from '../../nec01/rpc.js'
import { createLru } from '../../nec01/lru.js'
import type { NostrEvent } from '../../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC, RECENT_WINDOW_SEC } from '../../nec01/windows.js'
import { CommandError, parseDmText, type CommandReply, type CommandRequest, type Transport } from './commands.js'
import { createSeenStore, DEDUP_TTL_SEC, type SeenStore } from './dedup.js'
import { countUp } from './counters.js'
import { verifyEvent } from '../crypto.js'
import type { Identity } from './identity.js'
import { createRateLimiter, type RateLimitConfig, type RateLimiter } from './ratelimit.js'
import type { Replier, ReplyTarget } from './reply.js'
import type { Logger } from '../log.js'
import { normalizeRelayUrl } from '../relays/config.js'
import { errorText } from '../../nec01/errors.js'

export const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024
/**
 * Clock skew tolerated in a request's created_at. With it, every re-delivery of a request
 * falls inside the dedup TTL: a gift wrap stays after `since` for at most
 * GIFT_WRAP_WINDOW_SEC + MAX_FUTURE_SEC = 2 d 2 h < DEDUP_TTL_SEC.
 */
export const MAX_FUTURE_SEC = 3600

export interface InboxSource {
  /** `filters` is called at every (re)subscription so `since` moves with time */
  subscribe(filters: () => Filter[], onevent: (event: NostrEvent, relay: string) => void): { close(): void }
  /** the latest event matching the filter from any relay, or null after the timeout */
  fetchLatest(filter: Filter, timeoutMs: number): Promise<NostrEvent | null>
}

export interface InboxOptions {
  identity: Identity
  source: InboxSource
  replier: Replier
  /** runs a command; throws CommandError for a refusal */
  run: (req: CommandRequest) => Promise<CommandReply>
  log: Logger
  counters: Record<string, number>
  maxRequestBytes?: number
  rateLimit?: RateLimitConfig
  now?: () => number
}

type Drop =
  | 'too_large'
  | 'duplicate'
  | 'expired'
  | 'future'
  | 'wrong_p'
  | 'bad_signature'
  | 'undecryptable'
  | 'bad_rumor'
  | 'invalid_rpc'
  | 'wrong_kind'
  | 'rate_limited'

interface Decoded {
  transport: Transport
  sender: string
  requestId: string
  createdAt: number
  /** DM text, or the RPC request */
  text?: string
  rpc?: { id: string; method: string; params: unknown }
}

/** Inbox relays of a sender, cached: one lookup per sender per TTL, bounded. */
const INBOX_CACHE_TTL_MS = 10 * 60_000
const INBOX_CACHE_LIMIT = 10_000
const INBOX_LOOKUP_TIMEOUT_MS = 2_500

export interface Inbox {
  close(): void
  seen: SeenStore
}

/** What every step of a request reads: the options and the inbox's own memory. */
interface InboxContext {
  opts: InboxOptions
  now: () => number
  seen: SeenStore
  limiter: RateLimiter
  maxBytes: number
  /** the sender's NIP-17 inbox relays, cached */
  inboxRelays: (sender: string) => Promise<string[]>
}

export function startInbox(opts: InboxOptions): Inbox {
  const now = opts.now ?? Date.now
  const ctx: InboxContext = {
    opts,
    now,
    seen: createSeenStore({ ttlSec: DEDUP_TTL_SEC, now }),
    limiter: createRateLimiter(opts.rateLimit, { now }),
    maxBytes: opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    inboxRelays: createInboxRelayCache(opts.source, now),
  }
  const me = opts.identity.pubkey
  const sub = opts.source.subscribe(
    () => [
      { kinds: [kinds.EncryptedDirectMessage, RPC_KIND], '#p': [me], since: nowSec(ctx) - RECENT_WINDOW_SEC },
      { kinds: [kinds.GiftWrap], '#p': [me], since: nowSec(ctx) - GIFT_WRAP_WINDOW_SEC },
    ],
    (event, relay) => receive(ctx, event, relay),
  )
  return { close: () => sub.close(), seen: ctx.seen }
}

/** One event from a relay: screened, decoded, recorded, then answered in the background. */
function receive(ctx: InboxContext, event: NostrEvent, relay: string): void {
  count(ctx, 'received')
  const reason = screen(ctx, event)
  if (reason !== null) {
    drop(ctx, reason, event, relay)
    return
  }
  let req: Decoded | Drop
  try {
    req = decode(ctx, event)
  } catch {
    req = 'undecryptable'
  }
  if (typeof req === 'string') {
    drop(ctx, req, event, relay)
    return
  }
  if (!ctx.seen.firstSeen(`event:${event.id}`)) {
    drop(ctx, 'duplicate', event, relay)
    return
  }
  const { requestId } = req
  answer(ctx, req, relay).catch((err: unknown) => {
    count(ctx, 'errors')
    ctx.opts.log.error('reply failed', { request: requestId, error: errorText(err) })
  })
}

/** The checks on the envelope, cheapest first; the reason to drop it, or null. */
function screen(ctx: InboxContext, event: NostrEvent): Drop | null {
  // Relays re-deliver on every reconnect and through every relay: the id decides first.
  // It is recorded only once the signature checks out, so a forged copy carrying a real
  // request's id cannot shadow the real one.
  if (ctx.seen.has(`event:${event.id}`)) return 'duplicate'
  if (Buffer.byteLength(JSON.stringify(event)) > ctx.maxBytes) return 'too_large'
  if (isExpired(event.tags, nowSec(ctx))) return 'expired'
  // Relays keep re-delivering a future-dated event on every resubscription for as long as
  // it stays after `since`; past the dedup TTL it would be answered again.
  if (event.created_at > nowSec(ctx) + MAX_FUTURE_SEC) return 'future'
  if (!addressedTo(event.tags, ctx.opts.identity.pubkey)) return 'wrong_p'
  return null
}

function decode(ctx: InboxContext, event: NostrEvent): Decoded | Drop {
  // Checked for every kind, gift wraps included, so a forged wrap counts as a bad
  // signature rather than as undecryptable. The pool has usually checked it already:
  // verifyEvent remembers verified (id, sig) pairs, so here and in unwrap() it costs a hash.
  if (!verifyEvent(event)) return 'bad_signature'
  if (event.kind === kinds.GiftWrap) return decodeGiftWrap(ctx, event)
  if (event.kind === kinds.EncryptedDirectMessage) return decodeNip04(ctx.opts.identity, event)
  if (event.kind === RPC_KIND) return decodeRpc(ctx.opts.identity, event)
  return 'wrong_kind'
}

function decodeGiftWrap(ctx: InboxContext, event: NostrEvent): Decoded | Drop {
  let rumor
  try {
    // verifies the seal's signature and seal pubkey == rumor pubkey
    rumor = ctx.opts.identity.unwrap(event)
  } catch {
    return 'undecryptable'
  }
  if (typeof rumor.id !== 'string' || rumor.id !== getEventHash(rumor) || rumor.kind !== kinds.PrivateDirectMessage) return 'bad_rumor'
  if (!addressedTo(rumor.tags, ctx.opts.identity.pubkey)) return 'wrong_p'
  // NIP-40 inside the envelope: the wrap's own tag was checked before decryption.
  if (isExpired(rumor.tags, nowSec(ctx))) return 'expired'
  if (!ctx.seen.firstSeen(`rumor:${rumor.id}`)) return 'duplicate'
  return { transport: 'nip17', sender: rumor.pubkey, requestId: rumor.id, createdAt: rumor.created_at, text: rumor.content }
}

function decodeNip04(identity: Identity, event: NostrEvent): Decoded | Drop {
  let text: string
  try {
    text = identity.nip04Decrypt(event.pubkey, event.content)
  } catch {
    return 'undecryptable'
  }
  // NIP-04 has no MAC: a wrong key passes the padding check about once in 256 tries and
  // yields random bytes, which the (non-fatal) UTF-8 decoder turns into U+FFFD.
  if (text.includes('\uFFFD')) return 'undecryptable'
  return { transport: 'nip04', sender: event.pubkey, requestId: event.id, createdAt: event.created_at, text }
}

function decodeRpc(identity: Identity, event: NostrEvent): Decoded | Drop {
  let plain: string
  try {
    plain = identity.nip44Decrypt(event.pubkey, event.content)
  } catch {
    return 'undecryptable'
  }
  const rpc = parseRpcRequest(plain)
  if (rpc === null) return 'invalid_rpc'
  return { transport: 'rpc', sender: event.pubkey, requestId: event.id, createdAt: event.created_at, rpc }
}

async function answer(ctx: InboxContext, req: Decoded, relay: string): Promise<void> {
  // Decided before anything that costs (the inbox-relay lookup, the command), so a
  // flooding sender is turned away for the price of a map lookup.
  const decision = ctx.limiter.take(req.sender)
  if (decision === 'refuse-silent') {
    count(ctx, 'rate_limited')
    return
  }
  const target: ReplyTarget = { transport: req.transport, sender: req.sender, requestId: req.requestId, sourceRelays: [relay] }
  if (req.transport === 'nip17') target.inboxRelays = await ctx.inboxRelays(req.sender)
  if (decision === 'refuse-notify') {
    count(ctx, 'rate_limited')
    await refuse(ctx, req, target, 'RATE_LIMITED', 'too many requests: slow down and try again in a minute')
    return
  }
  await runAndReply(ctx, req, target)
}

async function runAndReply(ctx: InboxContext, req: Decoded, target: ReplyTarget): Promise<void> {
  const { opts } = ctx
  let method = req.rpc?.method ?? ''
  let reply: CommandReply
  try {
    // DM text is parsed in here: "attest" with bad JSON is a refusal the sender should see.
    const parsed = req.rpc ?? parseDmText(req.text ?? '')
    method = parsed.method
    reply = await opts.run(commandRequest(req, method, parsed.params))
  } catch (err) {
    if (err instanceof CommandError) {
      // Over DMs an unknown command gets the help text rather than an error.
      if (err.code === 'NOT_IMPLEMENTED' && req.transport !== 'rpc') {
        const help = await opts.run(commandRequest(req, 'help', {}))
        await send(ctx, req, target, { result: null, text: `I don't know "${method.slice(0, 32)}".\n\n${help.text}` })
        return
      }
      await refuse(ctx, req, target, err.code, err.message)
      return
    }
    count(ctx, 'errors')
    opts.log.error('command failed', { method, error: errorText(err) })
    await refuse(ctx, req, target, 'INTERNAL', 'internal error')
    return
  }
  await send(ctx, req, target, reply)
}

function commandRequest(req: Decoded, method: string, params: unknown): CommandRequest {
  return { transport: req.transport, sender: req.sender, createdAt: req.createdAt, requestId: req.requestId, method, params }
}

async function send(ctx: InboxContext, req: Decoded, target: ReplyTarget, reply: CommandReply): Promise<void> {
  const { replier, log } = ctx.opts
  const sent = req.rpc !== undefined ? await replier.rpc(target, { id: req.rpc.id, result: reply.result }) : await replier.text(target, reply.text)
  count(ctx, 'answered')
  log.info('answered', {
    transport: req.transport,
    request: req.requestId,
    reply: sent.event.id,
    relays: sent.results.map((r) => `${r.url} ${r.ok ? 'ok' : `refused: ${r.message}`}`),
  })
}

async function refuse(ctx: InboxContext, req: Decoded, target: ReplyTarget, code: RpcErrorCode, message: string): Promise<void> {
  if (req.rpc !== undefined) await ctx.opts.replier.rpc(target, { id: req.rpc.id, error: { code, message } })
  else await ctx.opts.replier.text(target, `${code}: ${message}`)
  count(ctx, `refused_${code.toLowerCase()}`)
}

function createInboxRelayCache(source: InboxSource, now: () => number): (sender: string) => Promise<string[]> {
  const cache = createLru<string, { relays: Promise<string[]>; at: number }>(INBOX_CACHE_LIMIT)
  return (sender) => {
    const cached = cache.peek(sender)
    // The promise is cached, not the answer: a burst from one sender costs one lookup.
    if (cached !== undefined && now() - cached.at < INBOX_CACHE_TTL_MS) return cached.relays
    const relays = lookupInboxRelays(source, sender)
    cache.set(sender, { relays, at: now() })
    return relays
  }
}

async function lookupInboxRelays(source: InboxSource, sender: string): Promise<string[]> {
  try {
    const ev = await source.fetchLatest({ kinds: [kinds.DirectMessageRelaysList], authors: [sender], limit: 1 }, INBOX_LOOKUP_TIMEOUT_MS)
    // A relay may answer with anything: only the sender's own signed list decides.
    if (ev === null || ev.pubkey !== sender || ev.kind !== kinds.DirectMessageRelaysList || !verifyEvent(ev)) return []
    const urls = ev.tags.filter((t) => t[0] === 'relay' && typeof t[1] === 'string').map((t) => normalizeRelayUrl(t[1] as string))
    // normalised as the pool names its relays, so the publisher recognises them
    return [...new Set(urls.filter((u): u is string => u !== null))].slice(0, 8)
  } catch {
    return []
  }
}

function nowSec(ctx: InboxContext): number {
  return Math.floor(ctx.now() / 1000)
}

function addressedTo(tags: string[][], pubkey: string): boolean {
  return tags.some((t) => t[0] === 'p' && t[1] === pubkey)
}

/** NIP-40: a malformed expiration counts as expired (the sender meant it to end) */
function isExpired(tags: string[][], nowSec: number): boolean {
  const exp = tags.find((t) => t[0] === 'expiration')?.[1]
  return exp !== undefined && (!/^[0-9]+$/.test(exp) || Number(exp) <= nowSec)
}

function count(ctx: InboxContext, name: string): void {
  countUp(ctx.opts.counters, name)
}

function drop(ctx: InboxContext, reason: Drop, event: NostrEvent, relay: string): void {
  count(ctx, `dropped_${reason}`)
  if (reason !== 'duplicate') ctx.opts.log.debug('request dropped', { reason, id: event.id, kind: event.kind, relay })
}
