// Limits of the Nitro Secure Module and the argument checks both adapters run before
// touching the module, so that bad input is rejected the same way with or without hardware.
import { NsmError, type AttestRequest } from './types.js'

/** PCR count of the real module (nsm-api nsm-check.rs asserts max_pcrs == 32). */
export const NSM_MAX_PCRS = 32
/** PCRs 0..15 are measured at boot and locked (nsm-check.rs: locked_pcrs == [0..16)). */
export const NSM_BOOT_PCRS = 16
/** SHA-384 bank: every PCR is 48 bytes, as in the attestation document. */
export { PCR_BYTES } from '../../nec01/payload.js'
/** public_key, user_data and nonce are `bytes .size (0..1024)` (nsm-api docs/attestation_process.md §2.2). */
export const NSM_MAX_FIELD_BYTES = 1024
/** The driver refuses a CBOR request above NSM_REQUEST_MAX_SIZE = 0x1000 with InputTooLarge (nsm-api src/driver/mod.rs). */
export const NSM_REQUEST_MAX_BYTES = 0x1000
/** Our own bound on random(n), so a caller cannot make the adapter loop for ever. */
export const NSM_MAX_RANDOM_BYTES = 1 << 16

/** Length of a CBOR head for an argument value (RFC 8949 §3: 1, 2, 3, 5 or 9 bytes). */
function cborHeadLength(value: number): number {
  if (value < 24) return 1
  if (value < 0x100) return 2
  if (value < 0x10000) return 3
  if (value < 0x100000000) return 5
  return 9
}

function cborTextLength(text: string): number {
  const n = Buffer.byteLength(text, 'utf8')
  return cborHeadLength(n) + n
}

function cborBytesLength(n: number): number {
  return cborHeadLength(n) + n
}

const CBOR_NULL_LENGTH = 1

function optionalBytesLength(value: Uint8Array | undefined): number {
  return value === undefined ? CBOR_NULL_LENGTH : cborBytesLength(value.length)
}

/**
 * Size of Request::Attestation { user_data, nonce, public_key } as the NSM library sends it:
 * serde_cbor encodes the externally tagged enum as {"Attestation": {"user_data": …, "nonce": …,
 * "public_key": …}} with absent options as null.
 */
export function attestationRequestSize(request: AttestRequest): number {
  return (
    cborHeadLength(1) +
    cborTextLength('Attestation') +
    cborHeadLength(3) +
    cborTextLength('user_data') +
    optionalBytesLength(request.userData) +
    cborTextLength('nonce') +
    optionalBytesLength(request.nonce) +
    cborTextLength('public_key') +
    optionalBytesLength(request.publicKey)
  )
}

/** Size of Request::ExtendPCR { index, data }: {"ExtendPCR": {"index": uint, "data": bstr}}. */
export function extendPcrRequestSize(index: number, dataLength: number): number {
  return (
    cborHeadLength(1) +
    cborTextLength('ExtendPCR') +
    cborHeadLength(2) +
    cborTextLength('index') +
    cborHeadLength(index) +
    cborTextLength('data') +
    cborBytesLength(dataLength)
  )
}

/** The largest `data` ExtendPCR accepts for this index (the request must fit in 4096 bytes). */
export function maxExtendDataLength(index: number): number {
  let n = NSM_REQUEST_MAX_BYTES
  while (n > 0 && extendPcrRequestSize(index, n) > NSM_REQUEST_MAX_BYTES) n--
  return n
}

export function checkPcrIndex(index: unknown, maxPcrs: number = NSM_MAX_PCRS): number {
  if (typeof index !== 'number' || !Number.isInteger(index)) {
    throw new NsmError('InvalidArgument', `PCR index must be an integer, got ${describeValue(index)}`)
  }
  if (index < 0 || index >= maxPcrs) {
    throw new NsmError('InvalidIndex', `PCR index ${index} is out of range 0..${maxPcrs - 1}`)
  }
  return index
}

export function checkBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new NsmError('InvalidArgument', `${what} must be a Uint8Array, got ${describeValue(value)}`)
  }
  return value
}

export function checkExtendData(index: number, data: unknown): Uint8Array {
  const bytes = checkBytes(data, 'PCR extend data')
  const size = extendPcrRequestSize(index, bytes.length)
  if (size > NSM_REQUEST_MAX_BYTES) {
    throw new NsmError(
      'InputTooLarge',
      `ExtendPCR request would be ${size} bytes (data ${bytes.length} bytes); the NSM accepts at most ${NSM_REQUEST_MAX_BYTES}`,
    )
  }
  return bytes
}

/** Validated copy of an attestation request: only Uint8Array fields, each within limits. */
export function checkAttestRequest(request: unknown): AttestRequest {
  if (request === undefined || request === null) return {}
  if (typeof request !== 'object') {
    throw new NsmError('InvalidArgument', `attestation request must be an object, got ${describeValue(request)}`)
  }
  const fields = request as Record<string, unknown>
  const out: AttestRequest = {}
  for (const [key, label] of [
    ['publicKey', 'public_key'],
    ['userData', 'user_data'],
    ['nonce', 'nonce'],
  ] as const) {
    const value = fields[key]
    if (value === undefined || value === null) continue
    const bytes = checkBytes(value, label)
    if (bytes.length > NSM_MAX_FIELD_BYTES) {
      throw new NsmError('InputTooLarge', `${label} is ${bytes.length} bytes; the NSM accepts at most ${NSM_MAX_FIELD_BYTES}`)
    }
    out[key] = bytes
  }
  const size = attestationRequestSize(out)
  if (size > NSM_REQUEST_MAX_BYTES) {
    throw new NsmError('InputTooLarge', `attestation request would be ${size} bytes; the NSM accepts at most ${NSM_REQUEST_MAX_BYTES}`)
  }
  return out
}

export function checkRandomLength(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > NSM_MAX_RANDOM_BYTES) {
    throw new NsmError('InvalidArgument', `random length must be an integer 0..${NSM_MAX_RANDOM_BYTES}, got ${describeValue(n)}`)
  }
  return n
}

/** Short, safe description of a bad argument for an error message (never its content). */
function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (value instanceof Uint8Array) return `${value.constructor.name}(${value.length})`
  if (typeof value === 'number') return String(value)
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object'
  return typeof value
}
