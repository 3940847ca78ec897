// The reference implementation: nostr-enclaves' Validator.parseValidateAttestation. It takes
// no validation time: each certificate check reads `new Date()` (@peculiar/x509's
// X509Certificate.verify, `(params.date || new Date).getTime()`), and `allowExpired` would
// skip the time check altogether. So the clock is pinned for the duration of the call by
// swapping the global Date for a subclass whose argument-less constructor returns the
// pinned instant; everything else about Date behaves as before. The bench runs one call at
// a time, so nothing else observes the pinned clock.
import * as nostrEnclaves from 'nostr-enclaves'
import { errorText } from '../nec01/errors.js'

/** The one method used. The package's typings re-export without a file extension, which
 * NodeNext resolution cannot follow, so the shape is declared here. */
interface ReferenceValidator {
  parseValidateAttestation(attestation: string, pubkey?: string): Promise<unknown>
}
const { Validator } = nostrEnclaves as unknown as { Validator: new () => ReferenceValidator }

const RealDate = globalThis.Date
let pinnedMs = 0

class PinnedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(pinnedMs)
    else super(...(args as [number]))
  }

  static override now(): number {
    return pinnedMs
  }
}

async function atPinnedTime<T>(ms: number, run: () => Promise<T>): Promise<T> {
  pinnedMs = ms
  globalThis.Date = PinnedDate as DateConstructor
  try {
    return await run()
  } finally {
    globalThis.Date = RealDate
  }
}

const validator = new Validator()

/** Resolves when the reference accepts the document at `atMs`; throws its error otherwise. */
export async function referenceValidate(base64: string, atMs: number): Promise<void> {
  await atPinnedTime(atMs, () => validator.parseValidateAttestation(base64))
}

/**
 * Whether the pin takes effect: accepted inside the window, rejected after it. Without
 * this a broken pin would time a different (cheaper or failing) path.
 */
export async function referencePinWorks(base64: string, insideMs: number, afterMs: number): Promise<{ ok: boolean; detail: string }> {
  try {
    await referenceValidate(base64, insideMs)
  } catch (err) {
    return { ok: false, detail: `rejected inside its window: ${errorText(err)}` }
  }
  try {
    await referenceValidate(base64, afterMs)
    return { ok: false, detail: 'accepted after its window: the pinned clock is not used' }
  } catch {
    return { ok: true, detail: 'accepted inside the window, rejected after it' }
  }
}
