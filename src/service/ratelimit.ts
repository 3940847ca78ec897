// Token buckets. Per sender: a flooding key runs dry on its own bucket while every other
// sender keeps theirs. Service-wide: fresh keys cost nothing, so all senders together draw
// on shared budgets too, of which strangers may use only the part above a reserve kept for
// known senders. The numbers are in limits.ts.
import { createLru } from '../../nec01/lru.js'
import { DEFAULT_PER_SENDER, SENDER_BUCKET_LIMIT, type Budget } from './limits.js'

export type RateLimitConfig = Budget

export type RateDecision = 'allow' | 'refuse-notify' | 'refuse-silent'

export interface RateLimiter {
  /** 'refuse-notify' once per empty spell, so the sender learns why, then silence */
  take(sender: string): RateDecision
  readonly size: number
}

interface Bucket {
  tokens: number
  updated: number
}

function refill(b: Bucket, config: Budget, t: number): void {
  b.tokens = Math.min(config.burst, b.tokens + ((t - b.updated) / 1000) * config.ratePerSec)
  b.updated = t
}

export function createRateLimiter(config: RateLimitConfig = DEFAULT_PER_SENDER, opts: { limit?: number; now?: () => number } = {}): RateLimiter {
  const now = opts.now ?? Date.now
  const limit = opts.limit ?? SENDER_BUCKET_LIMIT
  const buckets = createLru<string, Bucket & { notified: boolean }>(limit)

  return {
    take(sender) {
      const t = now()
      // get() keeps recently active senders; the least recently active is dropped first
      // (a full bucket carries no state worth keeping)
      let b = buckets.get(sender)
      if (b === undefined) {
        b = { tokens: config.burst, updated: t, notified: false }
        buckets.set(sender, b)
      } else {
        refill(b, config, t)
      }
      if (b.tokens >= 1) {
        b.tokens -= 1
        b.notified = false
        return 'allow'
      }
      if (b.notified) return 'refuse-silent'
      b.notified = true
      return 'refuse-notify'
    },
    get size() {
      return buckets.size
    },
  }
}

export type Standing = 'known' | 'stranger'

/** One service-wide bucket. */
export interface SharedBudget {
  /** takes a token; a stranger only while more than the known senders' reserve is left */
  take(standing: Standing): boolean
}

/**
 * Under a flood the strangers drain the bucket down to the reserve and no further, and the
 * refill goes to the reserve first: known senders keep up to the full rate, strangers get
 * what known senders leave.
 */
export function createSharedBudget(config: Budget, keptForKnown: number, opts: { now?: () => number } = {}): SharedBudget {
  const now = opts.now ?? Date.now
  const reserve = config.burst * keptForKnown
  const b: Bucket = { tokens: config.burst, updated: now() }
  return {
    take(standing) {
      refill(b, config, now())
      const floor = standing === 'known' ? 0 : reserve
      if (b.tokens - 1 < floor) return false
      b.tokens -= 1
      return true
    },
  }
}

/** Who is a stranger: neither the operator nor a sender answered within the known window. */
export interface SenderBook {
  standing(sender: string): Standing
  /** the sender was just answered: known for another KNOWN_SENDER_SEC */
  answered(sender: string): void
  readonly size: number
}

export function createSenderBook(opts: { operator?: string | null; knownSec: number; limit: number; now?: () => number }): SenderBook {
  const now = opts.now ?? Date.now
  const knownMs = opts.knownSec * 1000
  // sender → last answered (ms); forgetting the least recently answered only makes it a
  // stranger again: the safe direction.
  const known = createLru<string, number>(opts.limit)
  return {
    standing(sender) {
      if (sender === opts.operator) return 'known'
      const at = known.peek(sender)
      return at !== undefined && now() - at < knownMs ? 'known' : 'stranger'
    },
    answered(sender) {
      known.set(sender, now())
    },
    get size() {
      return known.size
    },
  }
}
