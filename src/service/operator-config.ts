// Who the operator is: one pubkey in operator.json at the image's top level. The file is
// copied into the enclave image (enclave/Dockerfile), so it is measured into PCR2 with the
// code, and a client that checks the PCRs knows which key may configure this enclave.
// A file that is there but wrong stops the service: guessing an operator would hand
// control to the wrong key, and dropping it silently would hide a broken build.
import { FileReadError, readBoundedFile } from '../files.js'
import { decode as nip19Decode, npubEncode } from 'nostr-tools/nip19'
import { schnorr } from '@noble/curves/secp256k1.js'
import { CodedError } from '../../nec01/errors.js'
import { OPERATOR_FILE } from '../measured-files.js'

export { OPERATOR_FILE }

export type OperatorConfigErrorCode = 'OPERATOR_KEY_INVALID' | 'OPERATOR_FILE_INVALID' | 'OPERATOR_FILE_UNREADABLE'

export class OperatorConfigError extends CodedError<OperatorConfigErrorCode> {}

function onCurve(hex: string): boolean {
  try {
    schnorr.utils.lift_x(BigInt(`0x${hex}`))
    return true
  } catch {
    return false
  }
}

/** npub or 64 hex → hex pubkey, checked to be a point on the curve. */
export function parseOperatorKey(text: string): string {
  let hex: string | null = null
  if (/^[0-9a-f]{64}$/i.test(text)) hex = text.toLowerCase()
  else if (text.startsWith('npub1')) {
    try {
      const decoded = nip19Decode(text)
      if (decoded.type === 'npub') hex = decoded.data
    } catch {
      hex = null
    }
  }
  if (hex === null || !onCurve(hex)) throw new OperatorConfigError('OPERATOR_KEY_INVALID', `operator '${text.slice(0, 80)}' is neither an npub nor a 64-hex pubkey on secp256k1`)
  return hex
}

/** The file's text → the operator's hex pubkey, or null for `{ "operator": null }`. */
export function parseOperatorFile(text: string): string | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new OperatorConfigError('OPERATOR_FILE_INVALID', `${OPERATOR_FILE} is not valid JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, 'operator')) {
    throw new OperatorConfigError('OPERATOR_FILE_INVALID', `${OPERATOR_FILE} must be an object { "operator": "npub1…" | null }`)
  }
  const operator = (value as { operator: unknown }).operator
  if (operator === null) return null
  if (typeof operator !== 'string') throw new OperatorConfigError('OPERATOR_FILE_INVALID', `${OPERATOR_FILE}: "operator" must be an npub or null`)
  return parseOperatorKey(operator)
}

/** { "operator": "npub1…" } is under 100 bytes; anything near this is not an operator file. */
const MAX_OPERATOR_FILE_BYTES = 64 * 1024

/** Reads the file; a missing file means no operator (every operator command is refused). */
export function loadOperatorFile(path: string): { operator: string | null; found: boolean } {
  let text: string
  try {
    text = readBoundedFile(path, MAX_OPERATOR_FILE_BYTES).toString('utf8')
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err
    if (err.errno === 'ENOENT') return { operator: null, found: false }
    throw new OperatorConfigError('OPERATOR_FILE_UNREADABLE', err.message)
  }
  return { operator: parseOperatorFile(text), found: true }
}

export function operatorNpub(operator: string | null): string | null {
  return operator === null ? null : npubEncode(operator)
}
