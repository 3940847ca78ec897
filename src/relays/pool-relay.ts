// One relay connection for the pool: nostr-tools' AbstractRelay, hardened.
import { AbstractRelay, type AbstractRelayConstructorOptions } from 'nostr-tools/abstract-relay'
import { validateEvent, type Event as NostrEvent } from 'nostr-tools/pure'
// libsecp256k1 (WASM), 5× noble: every event from every relay goes through it
import { verifyEvent } from '../crypto.js'

/** a challenge longer than this is not a NIP-42 challenge but an attempt to make us sign junk */
const MAX_CHALLENGE_LENGTH = 1024

export interface RelayHooks {
  onChallenge(challenge: string): void
  onOk(id: string, ok: boolean, message: string): void
  onNotice(message: string): void
  onDropped(reason: string): void
}

export type WebSocketImpl = NonNullable<AbstractRelayConstructorOptions['websocketImplementation']>
type RelayMessageEvent = Parameters<AbstractRelay['_onmessage']>[0]

/**
 * nostr-tools' relay with three changes: messages are checked before nostr-tools sees them
 * (it throws and logs on malformed input), OK/AUTH/NOTICE go to the pool, and a send on a
 * closed connection never becomes an unhandled rejection.
 */
export class PoolRelay extends AbstractRelay {
  private readonly hooks: RelayHooks
  constructor(url: string, websocketImplementation: WebSocketImpl, hooks: RelayHooks) {
    super(url, { verifyEvent, websocketImplementation, enablePing: false, enableReconnect: false })
    this.hooks = hooks
    this.onnotice = (msg) => hooks.onNotice(msg)
  }

  override send(message: string): Promise<void> {
    const sent = super.send(message)
    // nostr-tools calls send() without awaiting it in several places.
    sent.catch(() => undefined)
    return sent
  }

  override _onmessage(ev: RelayMessageEvent): void {
    const data: unknown = (ev as { data: unknown }).data
    if (typeof data !== 'string') return this.hooks.onDropped('non-text message')
    let msg: unknown
    try {
      msg = JSON.parse(data)
    } catch {
      return this.hooks.onDropped('not JSON')
    }
    if (!Array.isArray(msg) || typeof msg[0] !== 'string') return this.hooks.onDropped('not a relay message')
    const m: unknown[] = msg
    switch (m[0]) {
      case 'EVENT':
        // Events for subscriptions already closed are normal; anything malformed is dropped.
        if (typeof m[1] !== 'string' || !this.openSubs.has(m[1]) || !isEvent(m[2])) return
        break
      case 'EOSE':
      case 'CLOSED':
        if (typeof m[1] !== 'string') return this.hooks.onDropped(`${m[0]} without subscription id`)
        break
      case 'OK':
        if (typeof m[1] === 'string' && typeof m[2] === 'boolean') this.hooks.onOk(m[1], m[2], typeof m[3] === 'string' ? m[3] : '')
        else this.hooks.onDropped('malformed OK')
        return
      case 'AUTH':
        if (typeof m[1] === 'string' && m[1].length > 0 && m[1].length <= MAX_CHALLENGE_LENGTH) this.hooks.onChallenge(m[1])
        else this.hooks.onDropped('malformed AUTH')
        return
      case 'NOTICE':
        if (typeof m[1] === 'string') this.hooks.onNotice(m[1])
        return
      default:
        return
    }
    super._onmessage(ev)
  }
}

export function isEvent(v: unknown): v is NostrEvent {
  if (!validateEvent(v)) return false
  const e = v as Partial<NostrEvent>
  return typeof e.id === 'string' && typeof e.sig === 'string'
}
