// One request, one reply: ids already handled, remembered for as long as a copy of the
// request could still be accepted. Bounded by its capacity, and a full store refuses new
// ids rather than forgetting live ones: forgetting would answer a re-delivery twice. The
// caller sizes it so that it cannot fill (window × budget, limits.ts dedupCapacity).
import { DEDUP_TTL_SEC } from './limits.js'

export type SeenVerdict = 'new' | 'seen' | 'full'

export interface SeenStore {
  /** records `id`: 'new' the first time within the TTL, 'seen' after, 'full' when it cannot be kept */
  record(id: string): SeenVerdict
  /** whether an id was recorded within the TTL, without recording it */
  has(id: string): boolean
  /** whether `n` more ids fit, counting those that have expired */
  fits(n: number): boolean
  readonly size: number
}

export function createSeenStore(opts: { ttlSec?: number; capacity?: number; now?: () => number } = {}): SeenStore {
  const ttlMs = (opts.ttlSec ?? DEDUP_TTL_SEC) * 1000
  const capacity = opts.capacity ?? 200_000
  const now = opts.now ?? Date.now
  // One TTL for every id: insertion order is expiry order, the oldest are at the front.
  const seen = new Map<string, number>()

  function prune(t: number): void {
    for (const [id, expires] of seen) {
      if (expires > t) break
      seen.delete(id)
    }
  }

  function has(id: string): boolean {
    const expires = seen.get(id)
    return expires !== undefined && expires > now()
  }

  return {
    record(id) {
      const t = now()
      if (has(id)) return 'seen'
      seen.delete(id)
      if (seen.size >= capacity) prune(t)
      if (seen.size >= capacity) return 'full'
      seen.set(id, t + ttlMs)
      if ((seen.size & 1023) === 0) prune(t)
      return 'new'
    },
    has,
    fits(n) {
      if (seen.size + n <= capacity) return true
      prune(now())
      return seen.size + n <= capacity
    },
    get size() {
      return seen.size
    },
  }
}
