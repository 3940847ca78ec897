// Every limit and window the service applies to requests, in one place: how old or how far
// ahead a request may be, how long ids are remembered, what one sender may send, what all
// senders together may make the service do, and what a stranger must pay. The numbers
// depend on each other (the dedup store's size is window × budget), so they live together.
//
// A "stranger" is any sender that is neither the operator nor a sender the service
// answered within KNOWN_SENDER_SEC. Strangers draw on each service-wide budget only down to
// a reserve kept for known senders, and with --pow N they must attach N bits of NIP-13
// proof of work; see docs/security.md.

/** A token bucket: refills at ratePerSec, holds at most burst. */
export interface Budget {
  ratePerSec: number
  burst: number
}

/** The service-wide budgets: all senders together. */
export interface ServiceBudgets {
  /** every request the service answers: bounds its reply (publish) rate */
  requests: Budget
  /** requests for an expensive command (one that costs an NSM attestation: CommandSpec.expensive) */
  expensive: Budget
  /** relay lookups of a NIP-17 sender's inbox relays (kind 10050) */
  lookups: Budget
  /** RATE_LIMITED replies: a refusal is a publish too, so it has a budget of its own */
  notices: Budget
  /** the share of each budget's burst that strangers cannot touch (0 ≤ keptForKnown < 1) */
  keptForKnown: number
}

export const DEFAULT_PER_SENDER: Budget = { ratePerSec: 1, burst: 10 }

export const DEFAULT_BUDGETS: ServiceBudgets = {
  requests: { ratePerSec: 100, burst: 200 },
  expensive: { ratePerSec: 5, burst: 20 },
  lookups: { ratePerSec: 10, burst: 50 },
  notices: { ratePerSec: 2, burst: 10 },
  keptForKnown: 0.5,
}

/** Budgets that never refuse: for benchmarks of the per-request floor. */
export const UNLIMITED_BUDGETS: ServiceBudgets = {
  requests: { ratePerSec: 1e9, burst: 1e9 },
  expensive: { ratePerSec: 1e9, burst: 1e9 },
  lookups: { ratePerSec: 1e9, burst: 1e9 },
  notices: { ratePerSec: 1e9, burst: 1e9 },
  keptForKnown: 0,
}

/** Highest --pow: 2^32 hashes is hours of a client's CPU, already no service for anyone. */
export const MAX_POW_BITS = 32

/**
 * How old a request may be: the created_at of a kind 4 or RPC event, the rumor's for NIP-17
 * (the wrap and seal are backdated by design, up to two days, so theirs say nothing). Also
 * how far back the kind 4/RPC subscription reaches (the gift wrap one reaches over the whole
 * backdating: nec01/windows.ts). Wider than the operator's ±5 minutes, so a stale operator
 * write is told STALE rather than dropped. Service policy, unlike the clients' reply
 * look-back (RECENT_WINDOW_SEC in nec01/windows.ts): the dedup store's size follows from it.
 */
export const REQUEST_WINDOW_SEC = 10 * 60
/** Clock skew tolerated ahead of now. */
export const MAX_FUTURE_SEC = 10 * 60
/**
 * How long an answered request's ids are remembered: past this, every copy of it is outside
 * [now − REQUEST_WINDOW_SEC, now + MAX_FUTURE_SEC] and is dropped as stale instead.
 */
export const DEDUP_TTL_SEC = REQUEST_WINDOW_SEC + MAX_FUTURE_SEC
/** ids recorded per answered request: the event's, and for NIP-17 the rumor's */
const IDS_PER_REQUEST = 2

/**
 * The dedup store's size: every id the budgets let through in one TTL, so it never has to
 * forget a live id. Only requests that get a reply (an answer or a notice) are recorded.
 */
export function dedupCapacity(b: ServiceBudgets): number {
  const perTtl = (x: Budget): number => x.ratePerSec * DEDUP_TTL_SEC + x.burst
  return Math.ceil(IDS_PER_REQUEST * (perTtl(b.requests) + perTtl(b.notices)))
}

/** A sender answered within this is known, not a stranger. */
export const KNOWN_SENDER_SEC = 3600
/** Known senders remembered; beyond it the longest-unanswered becomes a stranger again. */
export const KNOWN_SENDER_LIMIT = 50_000
/** Per-sender buckets kept; a dropped bucket refills, so dropping the oldest is safe. */
export const SENDER_BUCKET_LIMIT = 100_000

export const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024

/** A sender's NIP-17 inbox relays, cached: one lookup per sender per TTL, bounded. */
export const INBOX_CACHE_TTL_MS = 10 * 60_000
export const INBOX_CACHE_LIMIT = 10_000
export const INBOX_LOOKUP_TIMEOUT_MS = 2_500

/** `base` at another rate, its burst scaled with it (the burst covers the same seconds). */
export function budgetAt(base: Budget, ratePerSec: number): Budget {
  return { ratePerSec, burst: Math.max(1, Math.round((ratePerSec * base.burst) / base.ratePerSec)) }
}

/** Full budgets from a partial override; throws RangeError on a value that is not a positive number. */
export function resolveBudgets(partial: Partial<ServiceBudgets> = {}): ServiceBudgets {
  const b = { ...DEFAULT_BUDGETS, ...partial }
  for (const [name, x] of Object.entries({ requests: b.requests, expensive: b.expensive, lookups: b.lookups, notices: b.notices })) {
    if (!(x.ratePerSec > 0) || !(x.burst >= 1)) throw new RangeError(`budget ${name}: rate must be > 0 and burst >= 1`)
  }
  if (!(b.keptForKnown >= 0 && b.keptForKnown < 1)) throw new RangeError('keptForKnown must be in [0, 1)')
  return b
}

/**
 * The announcement's policy tags (kind 13793): what a stranger must do to be answered.
 * ["pow", "<bits>"]: NIP-13 difficulty of the event the relay delivers (the kind 4 or RPC
 * request, or the gift wrap), required of strangers. No tag: none required.
 */
export function policyTags(pow: number): string[][] {
  return pow > 0 ? [['pow', String(pow)]] : []
}
