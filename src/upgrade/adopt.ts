// The new build takes the key it was handed (docs/upgrades.md, step 7). With a sealed
// identity, the key is sealed under this build's own KMS key, exactly as a first boot seals
// a drawn key, and the blob goes to the same holder (the parent keeps the old blob aside);
// the service then restarts, and that boot unseals it like any later boot. PCR16 is locked
// to the key this boot started with, so serving another key needs a new boot. Without
// sealing (dev), the key is served from memory for this run only.
import { setTimeout as sleep } from 'node:timers/promises'
import { errorText } from '../../nec01/errors.js'
import type { LineageEntry } from '../../nec01/upgrade.js'
import type { Logger } from '../log.js'
import type { Nsm } from '../nsm/types.js'
import { IdentityError, type SealingConfig } from '../service/sealed-identity.js'
import type { AdoptIdentity, Handover } from './v2.js'

/** What happens next: a restart that unseals, or (not sealed) a restart with this key in memory. */
export type Adopted =
  | { sealed: true; pubkey: string; lineage: LineageEntry[] }
  | { sealed: false; pubkey: string; lineage: LineageEntry[]; secret: Uint8Array }

export interface AdoptOptions {
  nsm: Nsm
  /** the service's sealing: the same KMS client, key and holder as a first boot */
  sealing: SealingConfig | undefined
  log: Logger
  /** called once the key is safe (sealed and stored) or, without sealing, held in memory */
  then: (adopted: Adopted) => void
}

async function sealAndStore(config: SealingConfig, nsm: Nsm, h: Handover): Promise<void> {
  const seal = await import('../kms/seal.js')
  let blob: Uint8Array
  try {
    blob = await seal.sealKey({ kms: config.kms, keyId: config.keyId, secret: h.secret, nsm })
  } catch (error) {
    throw seal.isSealError(error) ? new IdentityError(error.code, error.message) : error
  }
  await config.holder.store(blob)
}

const ATTEMPTS = 6
const FIRST_DELAY_MS = 1_000

/**
 * The old holder has retired: from here the key exists only in this process, so a failure
 * that may clear by itself (KMS, the parent) is retried before giving up.
 */
async function sealWithRetries(config: SealingConfig, nsm: Nsm, h: Handover, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await sealAndStore(config, nsm, h)
    } catch (error) {
      const retryable = error instanceof IdentityError && error.retryable
      const fields = { error: errorText(error), attempt, kms_key: config.keyId, held_by: config.holder.where }
      if (!retryable || attempt >= ATTEMPTS) {
        log.error('the handed-over key could not be sealed or stored: it exists only in this process; do not stop it until an operator acts', fields)
        throw error
      }
      log.warn('sealing the handed-over key failed: retrying', fields)
      await sleep(FIRST_DELAY_MS * 2 ** (attempt - 1))
    }
  }
}

/** The `adopt` hook of ServiceConfig.upgrade.request. A failure to seal or store rejects. */
export function createAdopt(o: AdoptOptions): AdoptIdentity {
  return async (h) => {
    if (o.sealing === undefined) {
      o.log.warn('the handed-over key is NOT sealed (no KMS key): it is served from memory for this run only and is LOST at the next restart', { npub: h.pubkey })
      o.then({ sealed: false, pubkey: h.pubkey, lineage: h.lineage, secret: h.secret })
      return
    }
    await sealWithRetries(o.sealing, o.nsm, h, o.log)
    h.secret.fill(0)
    o.log.info('the handed-over key is sealed and stored: restarting to serve as it (the next boot unseals it)', { npub: h.pubkey, kms_key: o.sealing.keyId, held_by: o.sealing.holder.where })
    o.then({ sealed: true, pubkey: h.pubkey, lineage: h.lineage })
  }
}
