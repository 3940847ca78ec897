// One request, one reply: ids already handled, remembered long enough to outlast every
// redelivery (gift wraps are backdated up to two days, so the window is wider than that),
// and bounded so a flood cannot grow it without limit.
import { GIFT_WRAP_BACKDATE_SEC } from '../../nec01/windows.js'

/** NIP-59 randomises created_at up to two days back; three more hours of margin. */
export const DEDUP_TTL_SEC = GIFT_WRAP_BACKDATE_SEC + 3 * 3600

export interface SeenStore {
  /** true the first time an id is offered within the TTL, false afterwards */
  firstSeen(id: string): boolean
  /** whether an id was seen within the TTL, without recording it */
  has(id: string): boolean
  readonly size: number
}

export function createSeenStore(opts: { ttlSec?: number; limit?: number; now?: () => number } = {}): SeenStore {
  const ttlMs = (opts.ttlSec ?? DEDUP_TTL_SEC) * 1000
  const limit = opts.limit ?? 200_000
  const now = opts.now ?? Date.now
  // Insertion order is expiry order (a fixed TTL), so the oldest entries are at the front.
  const seen = new Map<string, number>()

  function prune(t: number): void {
    for (const [id, expires] of seen) {
      if (expires > t && seen.size <= limit) break
      seen.delete(id)
    }
  }

  return {
    firstSeen(id) {
      const t = now()
      const expires = seen.get(id)
      if (expires !== undefined && expires > t) return false
      seen.delete(id)
      seen.set(id, t + ttlMs)
      if (seen.size > limit || (seen.size & 1023) === 0) prune(t)
      return true
    },
    has(id) {
      const expires = seen.get(id)
      return expires !== undefined && expires > now()
    },
    get size() {
      return seen.size
    },
  }
}
