// How far back in time the Nostr transports reach, in one place, so the service's
// subscriptions, its dedup store and every client's reply subscriptions agree.

/** NIP-59: seal and gift wrap created_at are random up to two days back, so they don't date the rumor. */
export const GIFT_WRAP_BACKDATE_SEC = 2 * 24 * 3600
/** A gift-wrap subscription looks back over the whole backdating, and an hour more of margin. */
export const GIFT_WRAP_WINDOW_SEC = GIFT_WRAP_BACKDATE_SEC + 3600
/** kind 4 and RPC events are not backdated: subscriptions for them look back this far (clock skew). */
export const RECENT_WINDOW_SEC = 60
