// The NEC-03/04/05 signatures the parent instance hands to the enclave at run time. They
// cannot be baked into the image: they sign its PCRs, and any byte of the image changes
// them. The parent serves them on the proxy port the enclave already reaches (GET
// SIGNATURES_PATH); the service checks each against its own attestation before carrying
// it, so a parent can withhold a signature but never make the service vouch for a false one.
import { CodedError } from '../../nec01/errors.js'

/** Where the parent's proxy answers with the signature events (a JSON array). */
export const SIGNATURES_PATH = '/nec01/signatures'
/** One build, one instance and a few releases are a few KiB; more is not a signature list. */
export const MAX_SIGNATURES_BYTES = 256 * 1024
/** Events in one list: the announcement carries at most one build, one instance and 16 releases. */
export const MAX_SIGNATURES = 32

export class SignatureListError extends CodedError<'signatures/list'> {
  constructor(message: string) {
    super('signatures/list', message)
  }
}

/**
 * A signature list: a JSON array of event objects, one event object, or one event per line
 * (so `cat build.json launch.json release.json` makes one). Only the shape is checked here;
 * whether an event is a valid signature for this enclave is the service's question. Throws
 * SignatureListError.
 */
export function parseSignatureList(text: string, source: string): object[] {
  if (text.length > MAX_SIGNATURES_BYTES) throw new SignatureListError(`${source}: larger than ${MAX_SIGNATURES_BYTES} bytes`)
  const list = jsonValues(text.trim())
  if (list === null) throw new SignatureListError(`${source}: not JSON (expected an array of signature events, or one per line)`)
  if (list.length > MAX_SIGNATURES) throw new SignatureListError(`${source}: ${list.length} events, at most ${MAX_SIGNATURES}`)
  list.forEach((e, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new SignatureListError(`${source}: item ${i} is not an event object`)
  })
  return list as object[]
}

function jsonValues(text: string): unknown[] | null {
  if (text === '') return []
  try {
    const whole: unknown = JSON.parse(text)
    return Array.isArray(whole) ? whole : [whole]
  } catch {
    // not one JSON value: perhaps one per line
  }
  try {
    return text.split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown)
  } catch {
    return null
  }
}
