// Requests in: subscriptions for the three transports, then for each event the same
// gauntlet — duplicate, size, expiry, age, addressee, proof of work, signature, the budgets
// (the sender's own, the service's; for a gift wrap after unwrapping, as only then is the
// sender known), decryption, the method's budget — before a command runs and its reply
// goes out. Anything malformed is dropped and counted; nothing malformed ever gets a reply,
// and no event can throw out of here. The limits and windows are in limits.ts.
import * as kinds from 'nostr-tools/kinds'
import { getEventHash } from 'nostr-tools/pure'
import type { Filter } from 'nostr-tools/filter'
import { getPow } from 'nostr-tools/nip13'
import { parseRpcRequest, RPC_KIND, type RpcErrorCode } from '../../nec01/rpc.js'
import { errorText } from '../../nec01/errors.js'
import { createLru } from '../../nec01/lru.js'
import type { NostrEvent } from '../../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC } from '../../nec01/windows.js'
import { CommandError, dmMethod, parseDmText, type CommandReply, type CommandRequest, type Transport } from './commands.js'
import { countUp } from './counters.js'
import { createSeenStore, type SeenStore } from './dedup.js'
import { verifyEvent } from '../crypto.js'
import type { Identity } from './identity.js'
import {
  dedupCapacity,
  DEFAULT_MAX_REQUEST_BYTES,
  INBOX_CACHE_LIMIT,
  INBOX_CACHE_TTL_MS,
  INBOX_LOOKUP_TIMEOUT_MS,
  KNOWN_SENDER_LIMIT,
  KNOWN_SENDER_SEC,
  MAX_FUTURE_SEC,
  REQUEST_WINDOW_SEC,
  resolveBudgets,
  type Budget,
  type ServiceBudgets,
} from './limits.js'
import { createRateLimiter, createSenderBook, createSharedBudget, type RateLimitConfig, type RateLimiter, type SenderBook, type SharedBudget, type Standing } from './ratelimit.js'
import type { Replier, ReplyTarget } from './reply.js'
import type { Logger } from '../log.js'
import { normalizeRelayUrl } from '../relays/config.js'

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
  /** each sender's own bucket */
  rateLimit?: RateLimitConfig
  /** all senders together; each one missing takes its default (limits.ts) */
  budgets?: Partial<ServiceBudgets>
  /** NIP-13 bits required of strangers' requests; 0 or absent: none */
  pow?: number
  /** the operator is never a stranger */
  operator?: string | null
  /** whether a method draws on the expensive budget (CommandSpec.expensive) */
  isExpensive?: (method: string) => boolean
  now?: () => number
}

type Drop =
  | 'too_large'
  | 'duplicate'
  | 'expired'
  | 'stale'
  | 'future'
  | 'wrong_p'
  | 'no_pow'
  | 'bad_signature'
  | 'undecryptable'
  | 'bad_rumor'
  | 'invalid_rpc'
  | 'wrong_kind'
  | 'dedup_full'

interface Decoded {
  transport: Transport
  sender: string
  requestId: string
  createdAt: number
  /** DM text, or the RPC request */
  text?: string
  rpc?: { id: string; method: string; params: unknown }
}

export interface Inbox {
  close(): void
  seen: SeenStore
}

interface Budgets {
  requests: SharedBudget
  expensive: SharedBudget
  lookups: SharedBudget
  notices: SharedBudget
}

/** What every step of a request reads: the options and the inbox's own memory. */
interface InboxContext {
  opts: InboxOptions
  now: () => number
  seen: SeenStore
  limiter: RateLimiter
  budgets: Budgets
  senders: SenderBook
  pow: number
  maxBytes: number
  /** the sender's NIP-17 inbox relays, cached */
  inboxRelays: (sender: string, standing: Standing) => Promise<string[]>
}

export function startInbox(opts: InboxOptions): Inbox {
  const now = opts.now ?? Date.now
  const b = resolveBudgets(opts.budgets)
  const shared = (x: Budget): SharedBudget => createSharedBudget(x, b.keptForKnown, { now })
  const budgets: Budgets = { requests: shared(b.requests), expensive: shared(b.expensive), lookups: shared(b.lookups), notices: shared(b.notices) }
  const ctx: InboxContext = {
    opts,
    now,
    seen: createSeenStore({ capacity: dedupCapacity(b), now }),
    limiter: createRateLimiter(opts.rateLimit, { now }),
    budgets,
    senders: createSenderBook({ operator: opts.operator ?? null, knownSec: KNOWN_SENDER_SEC, limit: KNOWN_SENDER_LIMIT, now }),
    pow: opts.pow ?? 0,
    maxBytes: opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    inboxRelays: createInboxRelayCache(opts.source, budgets.lookups, opts.counters, now),
  }
  const me = opts.identity.pubkey
  const sub = opts.source.subscribe(
    () => [
      { kinds: [kinds.EncryptedDirectMessage, RPC_KIND], '#p': [me], since: nowSec(ctx) - REQUEST_WINDOW_SEC },
      { kinds: [kinds.GiftWrap], '#p': [me], since: nowSec(ctx) - GIFT_WRAP_WINDOW_SEC },
    ],
    (event, relay) => receive(ctx, event, relay),
  )
  return { close: () => sub.close(), seen: ctx.seen }
}

/** One event from a relay: screened, admitted, decoded, recorded, then answered in the background. */
function receive(ctx: InboxContext, event: NostrEvent, relay: string): void {
  count(ctx, 'received')
  const reason = screen(ctx, event)
  if (reason !== null) return drop(ctx, reason, event, relay)
  // Checked for every kind, gift wraps included, so a forged wrap counts as a bad
  // signature rather than as undecryptable. The pool has usually checked it already:
  // verifyEvent remembers verified (id, sig) pairs, so here and in unwrap() it costs a hash.
  if (!verifyEvent(event)) return drop(ctx, 'bad_signature', event, relay)
  if (event.kind === kinds.GiftWrap) return receiveWrap(ctx, event, relay)
  if (event.kind !== kinds.EncryptedDirectMessage && event.kind !== RPC_KIND) return drop(ctx, 'wrong_kind', event, relay)
  // The author is in the clear: the budgets decide before the decryption (an ECDH for every
  // new key), so a stranger turned away costs a signature check, not a key agreement.
  const standing = ctx.senders.standing(event.pubkey)
  const gate = admitSender(ctx, event.pubkey, standing)
  if (gate === 'silent') return
  const req = decoded(() => (event.kind === kinds.EncryptedDirectMessage ? decodeNip04(ctx.opts.identity, event) : decodeRpc(ctx.opts.identity, event)))
  if (typeof req === 'string') return drop(ctx, req, event, relay)
  proceed(ctx, event, relay, req, standing, gate)
}

/** A gift wrap names its sender only inside: unwrapped first, then judged like the rest. */
function receiveWrap(ctx: InboxContext, event: NostrEvent, relay: string): void {
  const req = decoded(() => decodeGiftWrap(ctx, event))
  if (typeof req === 'string') return drop(ctx, req, event, relay)
  const standing = ctx.senders.standing(req.sender)
  if (lacksPow(ctx, event, standing)) return drop(ctx, 'no_pow', event, relay)
  const gate = admitSender(ctx, req.sender, standing)
  if (gate === 'silent') return
  proceed(ctx, event, relay, req, standing, gate)
}

function decoded(decode: () => Decoded | Drop): Decoded | Drop {
  try {
    return decode()
  } catch {
    return 'undecryptable'
  }
}

/** Admitted so far: the method's own budget, then recorded and answered (or told RATE_LIMITED). */
function proceed(ctx: InboxContext, event: NostrEvent, relay: string, req: Decoded, standing: Standing, gate: 'answer' | 'notify'): void {
  const admission = gate === 'answer' ? admitMethod(ctx, req, standing) : 'notify'
  if (admission === 'silent') return
  // Recorded only now: what gets no reply leaves no trace, so the store holds at most what
  // the budgets let through in one TTL, and never has to forget a live id.
  const ids = [`event:${event.id}`, ...(req.transport === 'nip17' ? [`rumor:${req.requestId}`] : [])]
  if (!ctx.seen.fits(ids.length)) return drop(ctx, 'dedup_full', event, relay)
  for (const id of ids) ctx.seen.record(id)
  const { requestId } = req
  const work = admission === 'answer' ? answer(ctx, req, relay, standing) : notify(ctx, req, relay)
  work.catch((err: unknown) => {
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
  const t = nowSec(ctx)
  if (isExpired(event.tags, t)) return 'expired'
  // Relays keep re-delivering a future-dated event on every resubscription for as long as
  // it stays after `since`; past the dedup TTL it would be answered again.
  if (event.created_at > t + MAX_FUTURE_SEC) return 'future'
  // The subscription's `since` ages with the connection; the bound is kept here. A gift
  // wrap's own date is backdated by design: its rumor's is checked once unwrapped.
  if (event.kind !== kinds.GiftWrap && event.created_at < t - REQUEST_WINDOW_SEC) return 'stale'
  if (!addressedTo(event.tags, ctx.opts.identity.pubkey)) return 'wrong_p'
  // Before the signature: a claimed known author that is forged fails that check next.
  if (event.kind !== kinds.GiftWrap && lacksPow(ctx, event, ctx.senders.standing(event.pubkey))) return 'no_pow'
  return null
}

/** --pow: a stranger's request must carry that many leading zero bits in its id (NIP-13). */
function lacksPow(ctx: InboxContext, event: NostrEvent, standing: Standing): boolean {
  // An id that is not hex would read as all zeros; it fails the hash check later anyway.
  return ctx.pow > 0 && standing === 'stranger' && (!/^[0-9a-f]{64}$/.test(event.id) || getPow(event.id) < ctx.pow)
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
  const t = nowSec(ctx)
  // NIP-40 inside the envelope: the wrap's own tag was checked before decryption.
  if (isExpired(rumor.tags, t)) return 'expired'
  // The rumor carries the real time (NIP-17 backdates only the seal and the wrap).
  if (rumor.created_at < t - REQUEST_WINDOW_SEC) return 'stale'
  if (rumor.created_at > t + MAX_FUTURE_SEC) return 'future'
  if (ctx.seen.has(`rumor:${rumor.id}`)) return 'duplicate'
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

type Admission = 'answer' | 'notify' | 'silent'

/**
 * The sender's own bucket, then the service's request budget: decided before anything that
 * costs (decryption where the sender is in the clear, the inbox-relay lookup, the command).
 * A refusal is told (RATE_LIMITED) while the notices budget lasts.
 */
function admitSender(ctx: InboxContext, sender: string, standing: Standing): Admission {
  const own = ctx.limiter.take(sender)
  if (own === 'refuse-silent') return refused(ctx, null, 'silent')
  if (own === 'refuse-notify') return refused(ctx, null, notice(ctx, standing))
  if (!ctx.budgets.requests.take(standing)) return refused(ctx, 'requests', notice(ctx, standing))
  return 'answer'
}

/** An expensive command (one NSM attestation each) also draws on its own, tighter budget. */
function admitMethod(ctx: InboxContext, req: Decoded, standing: Standing): Admission {
  const method = req.rpc?.method ?? dmMethod(req.text ?? '')
  if (ctx.opts.isExpensive?.(method) === true && !ctx.budgets.expensive.take(standing)) return refused(ctx, 'expensive', notice(ctx, standing))
  return 'answer'
}

function notice(ctx: InboxContext, standing: Standing): 'notify' | 'silent' {
  return ctx.budgets.notices.take(standing) ? 'notify' : 'silent'
}

function refused(ctx: InboxContext, budget: 'expensive' | 'requests' | null, how: 'notify' | 'silent'): 'notify' | 'silent' {
  count(ctx, 'rate_limited')
  if (budget !== null) count(ctx, `budget_${budget}_refused`)
  return how
}

async function answer(ctx: InboxContext, req: Decoded, relay: string, standing: Standing): Promise<void> {
  const target: ReplyTarget = { transport: req.transport, sender: req.sender, requestId: req.requestId, sourceRelays: [relay] }
  if (req.transport === 'nip17') target.inboxRelays = await ctx.inboxRelays(req.sender, standing)
  await runAndReply(ctx, req, target)
  ctx.senders.answered(req.sender)
}

/** RATE_LIMITED, back where the request came from: a refusal costs no inbox lookup. */
async function notify(ctx: InboxContext, req: Decoded, relay: string): Promise<void> {
  const target: ReplyTarget = { transport: req.transport, sender: req.sender, requestId: req.requestId, sourceRelays: [relay] }
  await refuse(ctx, req, target, 'RATE_LIMITED', 'too many requests: slow down and try again in a minute')
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
        // The word is the sender's own: a reply carrying tee_root does not repeat it.
        await send(ctx, req, target, { result: null, text: `Unknown command.\n\n${help.text}` })
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

function createInboxRelayCache(
  source: InboxSource,
  budget: SharedBudget,
  counters: Record<string, number>,
  now: () => number,
): (sender: string, standing: Standing) => Promise<string[]> {
  const cache = createLru<string, { relays: Promise<string[]>; at: number }>(INBOX_CACHE_LIMIT)
  return (sender, standing) => {
    const cached = cache.peek(sender)
    // The promise is cached, not the answer: a burst from one sender costs one lookup.
    if (cached !== undefined && now() - cached.at < INBOX_CACHE_TTL_MS) return cached.relays
    // Out of lookups: the reply goes back where the request came from; nothing is cached,
    // so the next request may look up again.
    if (!budget.take(standing)) {
      countUp(counters, 'budget_lookups_refused')
      return Promise.resolve([])
    }
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
