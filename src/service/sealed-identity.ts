// Where the service's key comes from at boot: the rule that keeps one npub across restarts.
//   first boot    no blob held: draw a key, seal it under the pinned KMS key, hand the blob
//                 out to its holder (the parent); the service starts only once that is done
//   later boots   the holder hands the blob in: check its format and its key, unseal it with
//                 a fresh attestation, and the same key comes back
//   never forks   a blob that exists but does not open gives no new npub: the service keeps
//                 trying (soon while the cause may clear by itself, slowly when an operator
//                 must act) and says why in its logs and /health. Only the operator starts a
//                 new identity, with a reason (serve --new-identity, nec01 parent --new-identity).
// Without a KMS key the identity is ephemeral, as before: a new npub every start.
import { CodedError, errorText } from '../../nec01/errors.js'
import type { KMSClient } from '@aws-sdk/client-kms'
import { setTimeout as sleep } from 'node:timers/promises'
import { isPinnedKey } from '../kms/key-id.js'
import type { SealErrorCode } from '../kms/seal.js'
import type { Logger } from '../log.js'
import type { Nsm } from '../nsm/types.js'
import { createIdentity, drawSecretKey, identityFromSecret, isSecretKey, type Identity } from './identity.js'

/**
 * Beyond the seal layer's codes:
 * PARENT_UNREACHABLE: the holder did not answer (the parent is down, the proxy refused): retried.
 * HOLDER_FAILED: the holder answered but cannot read or keep the blob (a local file): an operator must act.
 * KEY_MISMATCH: the blob was sealed under another KMS key than the one this service is pinned to.
 */
export type IdentityErrorCode = SealErrorCode | 'PARENT_UNREACHABLE' | 'HOLDER_FAILED' | 'KEY_MISMATCH'

const RETRYABLE: ReadonlySet<IdentityErrorCode> = new Set(['KMS_UNREACHABLE', 'CREDENTIALS_REFUSED', 'PARENT_UNREACHABLE'])

export class IdentityError extends CodedError<IdentityErrorCode> {
  readonly retryable: boolean
  constructor(code: IdentityErrorCode, message: string) {
    super(code, message)
    this.retryable = RETRYABLE.has(code)
  }
}

function asIdentityError(error: unknown): IdentityError {
  if (error instanceof IdentityError) return error
  return new IdentityError('KMS_REJECTED', `unexpected: ${errorText(error).split('\n')[0] ?? ''}`)
}

type SealModule = typeof import('../kms/seal.js')

/**
 * Runs `use` with the seal layer, loaded on first use (it brings in AWS's SDK, which a
 * service without KMS never needs), its SealErrors turned into IdentityErrors.
 */
async function withSeal<T>(use: (seal: SealModule) => Promise<T>): Promise<T> {
  const seal = await import('../kms/seal.js')
  try {
    return await use(seal)
  } catch (error) {
    throw seal.isSealError(error) ? new IdentityError(error.code, error.message) : error
  }
}

export interface HeldKey {
  blob: Uint8Array | null
  /** the holder's operator asked for a new identity, with this reason */
  newIdentity: string | null
}

/** Keeps the sealed blob between boots; can lose or withhold it, never open it. */
export interface SealedKeyHolder {
  /** for logs and /health: the file, or the parent's address */
  readonly where: string
  load(): Promise<HeldKey>
  store(blob: Uint8Array): Promise<void>
}

export interface RetryPolicy {
  /** the first wait after a failure that may clear by itself; doubled each time */
  firstDelayMs: number
  maxDelayMs: number
  /** the wait after a failure only an operator can clear (a policy, a key, a blob) */
  operatorDelayMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { firstDelayMs: 1_000, maxDelayMs: 60_000, operatorDelayMs: 300_000 }

export interface SealingConfig {
  kms: KMSClient
  /** the KMS key this service is pinned to: its ARN, or its id in `region` */
  keyId: string
  region: string
  holder: SealedKeyHolder
  /** the operator's reason to start a new identity instead of unsealing the held one */
  newIdentity?: string
  retry?: Partial<RetryPolicy>
}

export type IdentityOrigin = 'new' | 'unsealed' | 'ephemeral'

/** What /health shows about the identity: public facts only. */
export interface IdentityStatus {
  /** whether the identity is sealed under KMS (false: a new one every start) */
  sealed: boolean
  state: 'starting' | 'retrying' | 'refused' | 'ready'
  origin: IdentityOrigin | null
  kms_key: string | null
  held_by: string | null
  /** the operator's reason, when this identity was started on request */
  new_identity_reason: string | null
  attempts: number
  last_error: { code: IdentityErrorCode; message: string; at: number } | null
  next_attempt_at: number | null
}

export interface IdentityKeeper {
  status(): IdentityStatus
  /** resolves once the identity exists; rejects only when `signal` aborts */
  obtain(signal?: AbortSignal): Promise<Identity>
}

export interface IdentityKeeperOptions {
  nsm: Nsm
  sealing?: SealingConfig
  log: Logger
}

export function createIdentityKeeper(options: IdentityKeeperOptions): IdentityKeeper {
  const { nsm, sealing, log } = options
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...sealing?.retry }
  const status: IdentityStatus = {
    sealed: sealing !== undefined,
    state: 'starting',
    origin: null,
    kms_key: sealing?.keyId ?? null,
    held_by: sealing?.holder.where ?? null,
    new_identity_reason: null,
    attempts: 0,
    last_error: null,
    next_attempt_at: null,
  }
  // A first boot's key survives a failed seal or hand-out: the retry seals the same key.
  let drawn: Uint8Array | null = null

  async function startNew(config: SealingConfig, reason: string | null): Promise<Identity> {
    if (reason !== null) log.warn('starting a NEW identity on the operator’s request: the old sealed key is not used (the holder keeps it aside)', { reason })
    else log.info('no sealed key held: first boot, a new identity', { held_by: config.holder.where })
    drawn ??= await drawSecretKey((n) => nsm.random(n))
    const secret = drawn
    const blob = await withSeal((seal) => seal.sealKey({ kms: config.kms, keyId: config.keyId, secret, nsm }))
    await config.holder.store(blob)
    const identity = identityFromSecret(drawn)
    drawn.fill(0)
    drawn = null
    status.origin = 'new'
    status.new_identity_reason = reason
    return identity
  }

  async function unseal(config: SealingConfig, blob: Uint8Array): Promise<Identity> {
    const { keyArn } = await withSeal(async (seal) => seal.checkSealedBlob(blob))
    if (!isPinnedKey(config.keyId, keyArn, config.region)) {
      throw new IdentityError('KEY_MISMATCH', `the sealed key names KMS key ${keyArn}; this service is pinned to ${config.keyId}`)
    }
    const secret = await withSeal((seal) => seal.unsealKey({ kms: config.kms, blob, nsm }))
    try {
      if (!isSecretKey(secret)) throw new IdentityError('BLOB_DAMAGED', 'the unsealed key is not a secp256k1 secret key')
      status.origin = 'unsealed'
      return identityFromSecret(secret)
    } finally {
      secret.fill(0)
    }
  }

  async function attempt(): Promise<Identity> {
    if (sealing === undefined) {
      status.origin = 'ephemeral'
      return createIdentity((n) => nsm.random(n))
    }
    if (sealing.newIdentity !== undefined) return startNew(sealing, sealing.newIdentity)
    const held = await sealing.holder.load()
    if (held.newIdentity !== null) return startNew(sealing, held.newIdentity)
    return held.blob === null ? startNew(sealing, null) : unseal(sealing, held.blob)
  }

  async function obtain(signal?: AbortSignal): Promise<Identity> {
    let transient = 0
    for (;;) {
      status.attempts += 1
      try {
        const identity = await attempt()
        Object.assign(status, { state: 'ready', next_attempt_at: null })
        log.info(status.origin === 'unsealed' ? 'identity unsealed' : status.origin === 'new' ? 'identity created and sealed' : 'identity created (ephemeral: not sealed)', {
          pubkey: identity.pubkey,
          npub: identity.npub,
          origin: status.origin,
          kms_key: status.kms_key,
          held_by: status.held_by,
          attempts: status.attempts,
        })
        return identity
      } catch (error) {
        // Without sealing there is nothing to wait for: a failure to draw a key is a bug.
        if (sealing === undefined) throw error
        const e = asIdentityError(error)
        transient = e.retryable ? transient + 1 : 0
        const delay = e.retryable ? Math.min(retry.firstDelayMs * 2 ** (transient - 1), retry.maxDelayMs) : retry.operatorDelayMs
        const at = Date.now()
        Object.assign(status, { state: e.retryable ? 'retrying' : 'refused', last_error: { code: e.code, message: e.message, at }, next_attempt_at: at + delay })
        const fields = { code: e.code, reason: e.message, attempt: status.attempts, retry_in_ms: delay, no_new_identity: true }
        if (e.retryable) log.warn('the identity cannot be unsealed yet: retrying', fields)
        else log.error('the identity is refused: an operator must act (docs/identity.md); no new identity is started', fields)
        await sleep(delay, undefined, signal === undefined ? {} : { signal })
      }
    }
  }

  return { status: () => ({ ...status, last_error: status.last_error === null ? null : { ...status.last_error } }), obtain }
}
