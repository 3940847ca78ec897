// The one way the service signs and sends: every event gets the current tee_root, or is
// refused when there is no valid root (fail closed). Everything else — announcements,
// replies — goes through here.
import { ClientAuth } from 'nostr-tools/kinds'
import type { EventTemplate } from 'nostr-tools/pure'
import { TEE_ROOT_TAG, withTeeRoot } from '../../nec01/event.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { Identity } from './identity.js'
import type { RootKeeper, RootState } from './root.js'
import { CodedError } from '../../nec01/errors.js'
import type { Logger } from '../log.js'
import type { PublishCode } from '../relays/pool-types.js'

export interface RelayResult {
  url: string
  ok: boolean
  /** the pool's verdict: ok, rejected, too-large (skipped, never sent), not-connected, ... */
  code?: PublishCode
  message: string
}

/** What the publisher needs of the relay pool. */
export interface RelaySink {
  publish(event: NostrEvent, opts?: { relays?: string[] }): Promise<RelayResult[]>
}

export class NoRootError extends CodedError<'no_root'> {
  constructor() {
    super('no_root', 'no valid attestation: refusing to sign (fail closed)')
  }
}

export interface Publisher {
  /** the template with tee_root added and created_at set inside the root's validity */
  carrier<T extends EventTemplate>(template: T): { template: T; root: RootState }
  /** adds tee_root, signs with the service key */
  sign(template: EventTemplate): NostrEvent
  /**
   * A NIP-42 AUTH event (kind 22242 only), signed with the service key but without tee_root:
   * its challenge is the relay's text, and tee_root would make it read as the enclave's
   * word. Refused without a valid root all the same (fail closed).
   */
  signAuth(template: EventTemplate): NostrEvent
  /** sign() and send to the write relays (or `relays`); resolves to per-relay results */
  publish(template: EventTemplate, opts?: { relays?: string[] }): Promise<{ event: NostrEvent; results: RelayResult[] }>
  /** send an already signed event (a gift wrap, signed by its one-time key) */
  send(event: NostrEvent, opts?: { relays?: string[] }): Promise<RelayResult[]>
}

export function createPublisher(opts: { identity: Identity; roots: RootKeeper; relays: RelaySink; log: Logger; now?: () => number }): Publisher {
  const nowSec = (): number => Math.floor((opts.now ?? Date.now)() / 1000)

  function carrier<T extends EventTemplate>(template: T): { template: T; root: RootState } {
    const root = opts.roots.current()
    if (root === null) throw new NoRootError()
    // A carrier's created_at must lie inside the attestation's validity, or verifiers
    // reject it; "now" always does while the root is current.
    const created_at = Math.min(Math.max(nowSec(), root.notBefore), root.expiresAt)
    return { template: withTeeRoot({ ...template, created_at }, root.teeRoot), root }
  }

  async function send(event: NostrEvent, sendOpts?: { relays?: string[] }): Promise<RelayResult[]> {
    const results = await opts.relays.publish(event, sendOpts)
    const accepted = results.filter((r) => r.ok).length
    opts.log.info('published', {
      kind: event.kind,
      id: event.id,
      accepted,
      relays: results.map((r) => `${r.url} ${r.ok ? 'ok' : 'refused'}${r.message === '' ? '' : `: ${r.message}`}`),
    })
    return results
  }

  function sign(template: EventTemplate): NostrEvent {
    return opts.identity.sign(carrier(template).template)
  }

  function signAuth(template: EventTemplate): NostrEvent {
    if (template.kind !== ClientAuth) throw new TypeError(`signAuth signs kind ${ClientAuth} only, not kind ${template.kind}`)
    if (opts.roots.current() === null) throw new NoRootError()
    return opts.identity.sign({ ...template, tags: template.tags.filter((t) => t[0] !== TEE_ROOT_TAG) })
  }

  return {
    carrier,
    sign,
    signAuth,
    send,
    async publish(template, publishOpts) {
      const event = sign(template)
      return { event, results: await send(event, publishOpts) }
    },
  }
}
