// The new build's side of a hand-over (docs/upgrades.md): ask the holder for a nonce,
// attest with it, send the root and the release signatures; wait out the cooldown; attest
// again with a fresh nonce and take the key. The key comes NIP-44-encrypted to this build's
// attested key; it is checked to be the holder's, then handed to `adopt`, which seals it
// under this build's KMS policy and serves as that npub from then on.
import { getPublicKey } from 'nostr-tools/pure'
import { CodedError } from '../../nec01/errors.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { LineageEntry } from '../../nec01/upgrade.js'
import type { Logger } from '../log.js'
import type { Identity } from '../service/identity.js'
import { CallError, type RpcCaller } from './call.js'

/** What the new build receives: the key, the lineage to announce, and the event that moved it. */
export interface Handover {
  /** the holder's secret key: seal it, never log it */
  secret: Uint8Array
  pubkey: string
  lineage: LineageEntry[]
  upgraded: string
}

/**
 * The seam to the sealed identity (src/kms): seal `secret` under this build's own KMS key
 * and serve as `pubkey`, announcing `lineage`, from then on (in an enclave: store the blob
 * with the parent, then restart into it; PCR16 binds one key per boot).
 */
export type AdoptIdentity = (handover: Handover) => Promise<void>

export type RequestErrorCode = 'CANCELLED' | 'WRONG_KEY' | 'MALFORMED'

export class RequestError extends CodedError<RequestErrorCode> {}

export interface RequesterOptions {
  /** hex pubkey of the holder */
  holder: string
  releases: NostrEvent[]
  call: RpcCaller
  /** a root event of this build bound to `nonce` (hex): the `attest` command */
  attest: (nonce: string) => Promise<NostrEvent>
  identity: Pick<Identity, 'nip44Decrypt'>
  adopt: AdoptIdentity
  log: Logger
  /** how often to ask the holder whether the upgrade is still pending (ms) */
  pollMs?: number
  /** stops waiting (the service closes) */
  signal?: AbortSignal
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined
}

async function provenRoot(opts: RequesterOptions): Promise<{ nonce: string; root: NostrEvent }> {
  const nonce = field(await opts.call('upgrade_challenge', {}), 'nonce')
  if (typeof nonce !== 'string' || !/^[0-9a-f]{64}$/.test(nonce)) throw new RequestError('MALFORMED', 'the holder sent no nonce')
  return { nonce, root: await opts.attest(nonce) }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** Until the activation time, asking now and then whether the upgrade is still pending. */
async function waitOut(opts: RequesterOptions, pending: string, activation: number): Promise<void> {
  const poll = opts.pollMs ?? 60_000
  for (;;) {
    if (opts.signal?.aborted === true) throw new RequestError('CANCELLED', 'stopped')
    const left = activation * 1000 - Date.now()
    if (left <= 0) return
    await sleep(Math.min(left + 50, poll), opts.signal)
    const status = await opts.call('upgrade_status', {}).catch(() => null)
    if (status !== null && field(status, 'pending') !== pending) throw new RequestError('CANCELLED', `the upgrade ${pending} is no longer pending (${String(field(status, 'phase'))})`)
  }
}

/** The key out of the holder's answer, checked to be the holder's own. */
function openKey(opts: RequesterOptions, answer: unknown): Handover {
  const key = field(answer, 'key')
  const upgraded = field(answer, 'upgraded')
  const lineage = field(answer, 'lineage')
  if (typeof key !== 'string' || typeof upgraded !== 'string' || !Array.isArray(lineage)) throw new RequestError('MALFORMED', 'the holder answered without key, upgraded and lineage')
  const hex = opts.identity.nip44Decrypt(opts.holder, key)
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new RequestError('MALFORMED', 'the key is not 32 bytes of hex')
  const secret = hexToBytes(hex)
  if (getPublicKey(secret) !== opts.holder) throw new RequestError('WRONG_KEY', 'the key handed over is not the holder\'s')
  const entries = lineage.filter((l): l is LineageEntry => typeof field(l, 'pcr0') === 'string' && typeof field(l, 'upgraded') === 'string')
  return { secret, pubkey: opts.holder, lineage: entries.map((l) => ({ pcr0: l.pcr0, upgraded: l.upgraded })), upgraded }
}

/** The holder's clock may be a little behind ours: TOO_EARLY right at the activation is retried. */
async function complete(opts: RequesterOptions): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const proof = await provenRoot(opts)
    try {
      return await opts.call('upgrade_complete', { nonce: proof.nonce, root: proof.root })
    } catch (err) {
      if (!(err instanceof CallError && err.message.startsWith('UPGRADE_TOO_EARLY') && attempt < 5)) throw err
      await sleep(1000, opts.signal)
    }
  }
}

/**
 * The whole hand-over from this build's side; resolves once `adopt` did. Throws CallError
 * (the holder's refusal code) or RequestError.
 */
export async function requestUpgrade(opts: RequesterOptions): Promise<Handover> {
  const first = await provenRoot(opts)
  const asked = await opts.call('upgrade_request', { nonce: first.nonce, root: first.root, releases: opts.releases })
  const pending = field(asked, 'pending')
  const activation = field(asked, 'activation')
  if (typeof pending !== 'string' || typeof activation !== 'number') throw new RequestError('MALFORMED', 'the holder answered without pending and activation')
  opts.log.info('upgrade pending at the holder', { pending, activation })
  await waitOut(opts, pending, activation)
  const answer = await complete(opts)
  const handover = openKey(opts, answer)
  opts.log.info('key received', { upgraded: handover.upgraded, npub: handover.pubkey })
  await opts.adopt(handover)
  return handover
}

export { CallError }
