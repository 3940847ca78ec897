// The service's attestation: binds the identity into the NSM, turns attestation documents
// into kind:23793 root events, and keeps a valid one at hand. Fail closed: `current()` is
// null whenever the root is expired or was never verified, and nothing is signed then.
import { sha256 } from '@noble/hashes/sha2.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { verifyAttestation } from '../../nec01/attestation.js'
import { buildRootEvent, verifyRootEvent } from '../../nec01/event.js'
import type { AttestationInfo, NostrEvent, VerifyResult } from '../../nec01/types.js'
import type { Nsm } from '../nsm/types.js'
import type { Identity } from './identity.js'
import type { Logger } from '../log.js'

/** PCR16 is the first PCR an enclave application may extend and lock (NSM spec). */
export const IDENTITY_PCR = 16

export interface RootState {
  event: NostrEvent
  /** JSON.stringify(event): the value of every tee_root tag */
  teeRoot: string
  attestation: AttestationInfo
  /** unix seconds: the expiration tag, which is the leaf certificate's notAfter */
  expiresAt: number
  /** unix seconds: the leaf certificate's notBefore */
  notBefore: number
  /** unix seconds */
  refreshedAt: number
}

export interface RootKeeperOptions {
  nsm: Nsm
  identity: Identity
  t: 'prod' | 'dev'
  /** trust root for the self-check; undefined = the pinned AWS root */
  trustRoot?: Uint8Array
  /** our own boot PCRs 0..2 (hex), so the self-check pins exactly this image */
  expectedPcrs: Record<number, string>
  /** refresh this long before expiry (seconds) */
  marginSec: number
  /** a debug-mode module: the self-check tolerates only the `debug` failure, and t is dev */
  debug: boolean
  log: Logger
  /** clock in milliseconds (tests) */
  now?: () => number
  onRotate?: (state: RootState) => void
}

export interface RootKeeper {
  /** the valid root right now, or null (expired, never made): never sign without one */
  current(): RootState | null
  /** attest, build, sign and self-verify a new root event */
  refresh(): Promise<RootState>
  /** refresh now and keep refreshing before expiry; a failure is logged and retried with backoff */
  start(): Promise<void>
  /** a fresh document showed a leaf other than the current root's: rotate early */
  leafSeen(attestation: AttestationInfo): void
  stop(): void
}

/** Binds the identity into PCR16: extend with SHA256(pubkey), then lock (before any attestation). */
export async function bindIdentityPcr(nsm: Nsm, identity: Identity): Promise<Uint8Array> {
  const value = await nsm.extendPcr(IDENTITY_PCR, sha256(hexToBytes(identity.pubkey)))
  await nsm.lockPcr(IDENTITY_PCR)
  return value
}

/** Shortest wait between refreshes when the NSM keeps returning the same leaf. */
const MIN_REFRESH_INTERVAL_MS = 60_000
const RETRY_BASE_MS = 1_000
const RETRY_CAP_MS = 60_000

export function createRootKeeper(opts: RootKeeperOptions): RootKeeper {
  const nowMs = opts.now ?? Date.now
  const nowSec = (): number => Math.floor(nowMs() / 1000)
  let state: RootState | null = null
  let timer: NodeJS.Timeout | null = null
  let failures = 0
  let stopped = false
  let inflight: Promise<RootState> | null = null

  function selfCheckPasses(result: VerifyResult): boolean {
    if (result.valid) return true
    // A debug enclave can never produce a root any client accepts; tolerate exactly that
    // failure so developers still see the service run, and nothing else.
    return opts.debug && result.checks.every((c) => c.ok || c.id === 'debug')
  }

  async function makeRoot(): Promise<RootState> {
    const publicKey = hexToBytes(opts.identity.pubkey)
    const doc = await opts.nsm.attest({ publicKey })
    const now = nowSec()
    const verifyOptions = {
      now,
      ...(opts.trustRoot === undefined ? {} : { root: opts.trustRoot }),
      expectedPcrs: opts.expectedPcrs,
    }
    const att = await verifyAttestation(doc, { ...verifyOptions, publicKey })
    if (att.attestation === null || !selfCheckPasses(att)) {
      throw new Error(`own attestation failed verification: ${att.reason ?? 'unknown'}: ${att.checks.find((c) => !c.ok)?.detail ?? ''}`)
    }
    // The expiration is the leaf certificate's notAfter, never "now + lifetime": the NSM
    // reuses a leaf across documents, so it may expire sooner than a fresh one would.
    const expiration = att.attestation.certificate.notAfter
    const event = opts.identity.sign(buildRootEvent({ attestation: doc, t: opts.t, expiration, created_at: now }))
    const check = await verifyRootEvent(event, { ...verifyOptions, expect: opts.t })
    if (!selfCheckPasses(check)) {
      throw new Error(`own root event failed verification: ${check.reason ?? 'unknown'}: ${check.checks.find((c) => !c.ok)?.detail ?? ''}`)
    }
    return {
      event,
      teeRoot: JSON.stringify(event),
      attestation: att.attestation,
      expiresAt: expiration,
      notBefore: att.attestation.certificate.notBefore,
      refreshedAt: now,
    }
  }

  function schedule(delayMs: number): void {
    if (stopped) return
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      void cycle()
    }, Math.max(0, delayMs))
    timer.unref()
  }

  function nextRefreshDelay(s: RootState): number {
    const due = (s.expiresAt - opts.marginSec) * 1000 - nowMs()
    return Math.max(due, MIN_REFRESH_INTERVAL_MS)
  }

  async function cycle(): Promise<void> {
    try {
      const before = state
      const next = await refresh()
      if (before !== null && next.expiresAt === before.expiresAt) {
        // Same leaf as before: the NSM has not rotated yet. Try again soon, bounded by expiry.
        schedule(Math.min(MIN_REFRESH_INTERVAL_MS, Math.max(0, next.expiresAt * 1000 - nowMs())))
      } else {
        schedule(nextRefreshDelay(next))
      }
    } catch (err) {
      failures++
      const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(failures - 1, 16))
      opts.log.error('attestation refresh failed', { error: err instanceof Error ? err.message : String(err), retry_ms: delay, failures })
      schedule(delay)
    }
  }

  function refresh(): Promise<RootState> {
    if (inflight !== null) return inflight
    inflight = makeRoot()
      .then((next) => {
        const rotated = state === null || state.event.id !== next.event.id
        state = next
        failures = 0
        opts.log.info('attestation refreshed', {
          root_id: next.event.id,
          expires_at: next.expiresAt,
          t: opts.t,
        })
        if (rotated) opts.onRotate?.(next)
        return next
      })
      .finally(() => {
        inflight = null
      })
    return inflight
  }

  return {
    current() {
      if (state === null) return null
      const now = nowSec()
      return now >= state.notBefore && now < state.expiresAt ? state : null
    },
    refresh,
    async start() {
      stopped = false
      await cycle()
    },
    leafSeen(attestation) {
      if (state !== null && attestation.certificate.notAfter !== state.attestation.certificate.notAfter) {
        opts.log.info('leaf certificate changed; refreshing the root event', {})
        schedule(0)
      }
    },
    stop() {
      stopped = true
      if (timer !== null) clearTimeout(timer)
      timer = null
    },
  }
}
