// The NEC-03/04/05 signatures the parent instance hands to the enclave at run time. They
// cannot be baked into the image: they sign its PCRs, and any byte of the image changes
// them. The parent serves them on the proxy port the enclave already reaches (GET
// SIGNATURES_PATH); the service checks each against its own attestation before carrying
// it, so a parent can withhold a signature but never make the service vouch for a false one.

/** Where the parent's proxy answers with the signature events (a JSON array). */
export const SIGNATURES_PATH = '/nec01/signatures'
/** One build, one instance and a few releases are a few KiB; more is not a signature list. */
export const MAX_SIGNATURES_BYTES = 256 * 1024
/** Events in one list: the announcement carries at most one build, one instance and 16 releases. */
export const MAX_SIGNATURES = 32

export class SignatureListError extends Error {
  readonly code = 'signatures/list'
  constructor(message: string) {
    super(message)
    this.name = 'SignatureListError'
  }
}

/**
 * A signature list: a JSON array of event objects (one object alone is read as a list of
 * one). Only the shape is checked here; whether an event is a valid signature for this
 * enclave is the service's question. Throws SignatureListError.
 */
export function parseSignatureList(text: string, source: string): object[] {
  if (text.length > MAX_SIGNATURES_BYTES) throw new SignatureListError(`${source}: larger than ${MAX_SIGNATURES_BYTES} bytes`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new SignatureListError(`${source}: not JSON (expected an array of signature events)`)
  }
  const list: unknown[] = Array.isArray(json) ? json : [json]
  if (list.length > MAX_SIGNATURES) throw new SignatureListError(`${source}: ${list.length} events, at most ${MAX_SIGNATURES}`)
  list.forEach((e, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new SignatureListError(`${source}: item ${i} is not an event object`)
  })
  return list as object[]
}
