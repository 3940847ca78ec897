// Per-sender token buckets: a flooding key runs dry on its own bucket while every other
// sender keeps theirs, so one sender cannot delay the others.
import { createLru } from '../../nec01/lru.js'

export interface RateLimitConfig {
  /** tokens added per second */
  ratePerSec: number
  /** bucket size: the burst a sender may send at once */
  burst: number
}

export const DEFAULT_RATE_LIMIT: RateLimitConfig = { ratePerSec: 1, burst: 10 }

export type RateDecision = 'allow' | 'refuse-notify' | 'refuse-silent'

export interface RateLimiter {
  /** 'refuse-notify' once per empty spell, so the sender learns why, then silence */
  take(sender: string): RateDecision
  readonly size: number
}

interface Bucket {
  tokens: number
  updated: number
  notified: boolean
}

export function createRateLimiter(config: RateLimitConfig = DEFAULT_RATE_LIMIT, opts: { limit?: number; now?: () => number } = {}): RateLimiter {
  const now = opts.now ?? Date.now
  const limit = opts.limit ?? 100_000
  const buckets = createLru<string, Bucket>(limit)

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
        b.tokens = Math.min(config.burst, b.tokens + ((t - b.updated) / 1000) * config.ratePerSec)
        b.updated = t
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
