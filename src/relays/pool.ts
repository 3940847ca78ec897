// The service's relay pool: one nostr-tools AbstractRelay per connection over `ws`, with the
// things a long-running service needs and nostr-tools leaves to the caller: reconnects with
// backoff that survive any number of failures, subscriptions re-sent after each reconnect,
// NIP-42 AUTH through a signer callback (the key never enters the pool), NIP-11 limits,
// per-relay health, optional HTTP CONNECT proxy, and a close() that leaves no timers.
//
// nostr-tools' own reconnect, ping and AUTH paths are not used: on failure they leak timers,
// can raise unhandled rejections (a relay refusing our AUTH event) or hang (a failing
// signer). Each connection is a fresh AbstractRelay; the pool's own modules own every timer.
import type { RelayPool, RelayPoolOptions } from './pool-types.js'
import { DEFAULTS, createPoolContext } from './pool-context.js'
import { openConnection } from './pool-connection.js'
import { addRelay, closePool, removeRelay } from './pool-lifecycle.js'
import { publish } from './pool-publish.js'
import { addRecord, settle, status } from './pool-state.js'
import { fetchEvents, subscribe } from './pool-subscriptions.js'

export * from './pool-types.js'

// The parts, each handed the one shared context: pool-context.ts (state, config),
// pool-state.ts (records, health), pool-connection.ts (connect, reconnect, NIP-11),
// pool-auth.ts (OK, AUTH), pool-subscriptions.ts, pool-publish.ts, pool-lifecycle.ts.
export function createRelayPool(options: RelayPoolOptions): RelayPool {
  const ctx = createPoolContext(options)
  for (const entry of options.relays) addRecord(ctx, entry)
  for (const rec of ctx.recs.values()) openConnection(ctx, rec)
  return {
    status: () => status(ctx),
    settle: (timeoutMs = DEFAULTS.connectTimeoutMs) => settle(ctx, timeoutMs),
    publish: (event, opts) => publish(ctx, event, opts),
    subscribe: (filters, opts) => subscribe(ctx, filters, opts),
    fetchEvents: (filters, opts) => fetchEvents(ctx, filters, opts),
    addRelay: (entry) => addRelay(ctx, entry),
    removeRelay: (url) => removeRelay(ctx, url),
    close: () => closePool(ctx),
  }
}
