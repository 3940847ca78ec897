// The NSM attestation payload (aws-nitro-enclaves-nsm-api docs/attestation_process.md
// §2.2 and §3.2.2), decoded strictly but tolerant of what real NSMs emit: the optional
// fields as CBOR null, user_data as an empty byte string, and (since 2025-09) an
// indefinite-length top-level map.
import { CborError, decodeCbor, type CborLimits, type CborMap } from './cbor.js'
import { VerifyError } from './result.js'

/** §3.2.2.2: pcrs map size ∈ [1, 32]. */
export const MAX_PCRS = 32
/** §3.2.2.2: index ∈ [0, 32). */
export const MAX_PCR_INDEX = 31
/** digest = "SHA384" (§2.2), so every PCR is a 48-byte SHA-384 value. */
export const PCR_BYTES = 48
export const DIGEST_SHA384 = 'SHA384'
/** §2.2: cert = bytes .size (1..1024). */
export const MAX_CERT_BYTES = 1024
/**
 * §2.2: user_data = bytes .size (0..1024), the type of public_key, user_data and nonce.
 * (§3.2.2.2 lists tighter numbers for some; real documents carry 800-byte public keys, and
 * the CDDL is the type definition, so it wins.)
 */
export const MAX_USER_DATA_BYTES = 1024
/**
 * The spec leaves cabundle unbounded; AWS chains are root + 3. A generous cap keeps the
 * work a hostile document can cause (one signature verification per entry) bounded.
 */
export const MAX_CABUNDLE = 16

/** timestamp is ms since the epoch; ECMAScript dates end at 8.64e15 ms (ECMA-262 §21.4.1.1). */
export const MAX_TIMESTAMP_MS = 8.64e15

/** Depth 2 = payload map → pcrs map / cabundle array → byte strings. */
const PAYLOAD_LIMITS: CborLimits = {
  maxDepth: 2,
  // above the real maxima (9 keys, 32 PCRs, 16 certificates) so that an excess is reported
  // by the field check with its name rather than as a bare CBOR limit
  maxItems: 64,
  maxStringBytes: 16384,
  indefiniteContainers: true,
}

const REQUIRED = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle'] as const
const OPTIONAL = ['public_key', 'user_data', 'nonce'] as const
const KNOWN = new Set<string>([...REQUIRED, ...OPTIONAL])

export interface AttestationPayload {
  module_id: string
  digest: string
  /** milliseconds since the epoch */
  timestamp: number
  pcrs: Map<number, Uint8Array>
  certificate: Uint8Array
  cabundle: Uint8Array[]
  public_key: Uint8Array | null
  user_data: Uint8Array | null
  nonce: Uint8Array | null
}

function bad(message: string): never {
  throw new VerifyError('payload', message)
}

function certBytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) bad(`${name} is not a byte string`)
  if (value.length < 1 || value.length > MAX_CERT_BYTES) bad(`${name} is ${value.length} bytes; expected 1..${MAX_CERT_BYTES}`)
  return value
}

function optionalBytes(map: CborMap, name: (typeof OPTIONAL)[number]): Uint8Array | null {
  const value = map.get(name)
  if (value === undefined || value === null) return null
  if (!(value instanceof Uint8Array)) bad(`${name} is neither a byte string nor null`)
  if (value.length > MAX_USER_DATA_BYTES) bad(`${name} is ${value.length} bytes; at most ${MAX_USER_DATA_BYTES} allowed`)
  return value
}

function readPcrs(value: unknown): Map<number, Uint8Array> {
  if (!(value instanceof Map)) bad('pcrs is not a map')
  if (value.size < 1 || value.size > MAX_PCRS) bad(`pcrs has ${value.size} entries; expected 1..${MAX_PCRS}`)
  const pcrs = new Map<number, Uint8Array>()
  for (const [index, pcr] of value) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > MAX_PCR_INDEX) {
      bad(`PCR index ${JSON.stringify(index)} is not an integer in 0..${MAX_PCR_INDEX}`)
    }
    if (!(pcr instanceof Uint8Array)) bad(`PCR${index} is not a byte string`)
    if (pcr.length !== PCR_BYTES) bad(`PCR${index} is ${pcr.length} bytes; SHA384 PCRs are ${PCR_BYTES}`)
    pcrs.set(index, pcr)
  }
  return pcrs
}

/** Decodes and checks the payload bytes. Throws VerifyError('payload'). */
export function parsePayload(bytes: Uint8Array): AttestationPayload {
  let top: unknown
  try {
    top = decodeCbor(bytes, PAYLOAD_LIMITS)
  } catch (err) {
    if (err instanceof CborError) bad(`payload is not valid CBOR: ${err.message}`)
    throw err
  }
  if (!(top instanceof Map)) bad('payload is not a map')
  for (const key of top.keys()) {
    if (typeof key !== 'string' || !KNOWN.has(key)) bad(`unexpected payload key ${JSON.stringify(key)}`)
  }
  for (const key of REQUIRED) if (!top.has(key)) bad(`payload has no ${key}`)

  const moduleId = top.get('module_id')
  if (typeof moduleId !== 'string') bad('module_id is not a text string')
  if (moduleId.length === 0) bad('module_id is empty')

  const digest = top.get('digest')
  if (typeof digest !== 'string') bad('digest is not a text string')
  if (digest !== DIGEST_SHA384) bad(`digest is ${JSON.stringify(digest)}; expected "SHA384"`)

  const timestamp = top.get('timestamp')
  if (typeof timestamp === 'bigint' && timestamp > 0n) bad(`timestamp ${timestamp} is out of range`)
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp)) bad('timestamp is not an unsigned integer')
  if (timestamp <= 0) bad(`timestamp is ${timestamp}; must be greater than 0`)
  if (timestamp > MAX_TIMESTAMP_MS) bad(`timestamp ${timestamp} is after the last representable date (${MAX_TIMESTAMP_MS} ms)`)

  const pcrs = readPcrs(top.get('pcrs'))
  const certificate = certBytes(top.get('certificate'), 'certificate')

  const bundle = top.get('cabundle')
  if (!Array.isArray(bundle)) bad('cabundle is not an array')
  if (bundle.length < 1 || bundle.length > MAX_CABUNDLE) bad(`cabundle has ${bundle.length} entries; expected 1..${MAX_CABUNDLE}`)
  const cabundle = bundle.map((entry, i) => certBytes(entry, `cabundle[${i}]`))

  return {
    module_id: moduleId,
    digest,
    timestamp,
    pcrs,
    certificate,
    cabundle,
    public_key: optionalBytes(top, 'public_key'),
    user_data: optionalBytes(top, 'user_data'),
    nonce: optionalBytes(top, 'nonce'),
  }
}
