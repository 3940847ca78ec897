// How a running service takes part in hand-overs (docs/upgrades.md): as a holder with a
// policy (its commands, its state read back from the relays before it announces anything),
// and as a new build asking a holder for its key. service.ts calls these; nothing else.
import { randomBytes } from 'node:crypto'
import { errorText } from '../../nec01/errors.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { LineageEntry } from '../../nec01/upgrade.js'
import type { Logger } from '../log.js'
import type { RelayPool } from '../relays/pool.js'
import type { CommandReply, CommandRequest } from '../service/commands.js'
import type { Identity } from '../service/identity.js'
import { createRpcCaller } from './call.js'
import type { UpgradePolicy } from './policy.js'
import { readOwnEvents, stateFromEvents } from './restore.js'
import type { Holder } from './v1.js'
import { requestUpgrade, type AdoptIdentity, type Handover } from './v2.js'

export interface ServiceUpgrade {
  /** upgrade.json; null: this build never hands its key on */
  policy: UpgradePolicy | null
  /** the builds that held this key before, announced in the lineage tags */
  lineage?: LineageEntry[]
  /** ask this holder for its key (this build is the new one) */
  request?: { holder: string; releases: NostrEvent[]; adopt: AdoptIdentity; pollMs?: number }
  /** the key went to a new build: this one stopped answering and announcing */
  onRetired?: (upgraded: string) => void
  /** how long to wait for the relays' answer about past hand-overs (default 8 s) */
  restoreTimeoutMs?: number
  /** how long a nonce the holder issues stays good (default 120 s) */
  nonceTtlSec?: number
}

const DEFAULT_RESTORE_TIMEOUT_MS = 8_000
const RESTORE_RETRY_MS = 30_000
const CALL_TIMEOUT_MS = 30_000

export interface RestoreOptions {
  holder: Holder
  pool: Pick<RelayPool, 'subscribe' | 'status'>
  pubkey: string
  pcr0: string
  trustRoot?: Uint8Array
  timeoutMs?: number
  log: Logger
}

/**
 * Reads the holder's past hand-overs. Resolves with whether this build handed its key on
 * (then it must not announce or answer). No relay answering leaves the state unknown, and
 * tries again later; every hand-over request is refused meanwhile.
 */
export async function restoreHolder(o: RestoreOptions, stopped: () => boolean): Promise<boolean> {
  const { events, answered } = await readOwnEvents(o.pool, o.pubkey, o.timeoutMs ?? DEFAULT_RESTORE_TIMEOUT_MS)
  if (answered === 0) {
    o.log.warn('no relay answered about past hand-overs: hand-over requests are refused until one does', {})
    const timer = setTimeout(() => {
      if (!stopped()) void restoreHolder(o, stopped)
    }, RESTORE_RETRY_MS)
    timer.unref()
    return false
  }
  const state = await stateFromEvents(events, o.pcr0, o.trustRoot, Math.floor(Date.now() / 1000))
  o.holder.setState(state)
  o.log.info('hand-over state read from the relays', { phase: state.phase, relays: answered, ...(state.phase === 'pending' ? { pending: state.event.id, activation: state.record.activation } : {}) })
  return state.phase === 'handed_over'
}

export interface RequesterWiring {
  request: NonNullable<ServiceUpgrade['request']>
  pool: Pick<RelayPool, 'publish' | 'subscribe'>
  identity: Identity
  /** runs one of this service's own commands (attest) */
  run: (req: CommandRequest) => Promise<CommandReply>
  log: Logger
  signal: AbortSignal
}

export type RequestOutcome = { ok: true; handover: Pick<Handover, 'pubkey' | 'lineage' | 'upgraded'> } | { ok: false; code: string; message: string }

/** This build asks the holder for its key, in the background; the promise never rejects. */
export function startRequester(w: RequesterWiring): Promise<RequestOutcome> {
  const call = createRpcCaller({ pool: w.pool, identity: w.identity, target: w.request.holder, timeoutMs: CALL_TIMEOUT_MS })
  const attest = async (nonce: string): Promise<NostrEvent> => {
    const reply = await w.run({ transport: 'rpc', sender: w.identity.pubkey, createdAt: Math.floor(Date.now() / 1000), requestId: randomBytes(16).toString('hex'), method: 'attest', params: { nonce } })
    return (reply.result as { event: NostrEvent }).event
  }
  return requestUpgrade({
    holder: w.request.holder,
    releases: w.request.releases,
    call,
    attest,
    identity: w.identity,
    adopt: w.request.adopt,
    log: w.log,
    signal: w.signal,
    ...(w.request.pollMs === undefined ? {} : { pollMs: w.request.pollMs }),
  }).then(
    // the secret stays with adopt: the outcome names the npub and the lineage only
    (h): RequestOutcome => ({ ok: true, handover: { pubkey: h.pubkey, lineage: h.lineage, upgraded: h.upgraded } }),
    (err: unknown): RequestOutcome => {
      const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'ERROR'
      const message = errorText(err)
      w.log.warn('hand-over failed', { code, error: message })
      return { ok: false, code, message }
    },
  )
}
