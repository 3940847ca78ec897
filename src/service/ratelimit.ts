// Token buckets. Per sender: a flooding key runs dry on its own bucket while every other
// sender keeps theirs. Service-wide: fresh keys cost nothing, so all senders together draw
// on shared budgets too, of which strangers may use only the part above a reserve kept for
// known senders. The numbers are in limits.ts.
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
  const buckets = new Map<string, Bucket & { notified: boolean }>()

  return {
    take(sender) {
      const t = now()
      let b = buckets.get(sender)
      if (b === undefined) {
        b = { tokens: config.burst, updated: t, notified: false }
        if (buckets.size >= limit) {
          // Full buckets carry no state worth keeping; drop the oldest entry.
          const oldest = buckets.keys().next().value
          if (oldest !== undefined) buckets.delete(oldest)
        }
      } else {
        buckets.delete(sender) // re-insert below: recently active senders stay at the back
        refill(b, config, t)
      }
      buckets.set(sender, b)
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
  // sender → last answered (ms); insertion order is answer order, the oldest at the front.
  const known = new Map<string, number>()
  return {
    standing(sender) {
      if (sender === opts.operator) return 'known'
      const at = known.get(sender)
      return at !== undefined && now() - at < knownMs ? 'known' : 'stranger'
    },
    answered(sender) {
      known.delete(sender)
      known.set(sender, now())
      // Forgetting a sender only makes it a stranger again: the safe direction.
      if (known.size > opts.limit) {
        const oldest = known.keys().next().value
        if (oldest !== undefined) known.delete(oldest)
      }
    },
    get size() {
      return known.size
    },
  }
}
