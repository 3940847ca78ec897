// VerifyOptions checked and normalized once, up front: a malformed expectation must fail
// as `input` rather than silently match nothing or everything.
import { pinnedAwsRoot } from './aws-root.js'
import { parseRoot } from './cert.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { bytesEqual } from './encoding.js'
import { MAX_PCR_INDEX, PCR_BYTES } from './payload.js'
import { VerifyError } from './result.js'
import { toUnixMillis } from './time.js'
import type { BytesLike, VerifyOptions } from './types.js'

/** Longest expected value accepted (a document field is at most 1024 bytes, AWS spec §2.2). */
const MAX_EXPECTED_BYTES = 1024

export interface NormalizedOptions {
  /** validation time, ms since the epoch */
  nowMs: number
  /** trusted root DER */
  root: Uint8Array
  /** true when the root is the pinned AWS Nitro root G1 */
  awsRoot: boolean
  /** null when none were given (or an empty set was given) */
  expectedPcrs: Map<number, Uint8Array> | null
  anyPcrs: boolean
  publicKey: Uint8Array | null
  nonce: Uint8Array | null
  userData: Uint8Array | null
}

function bytesOption(value: BytesLike | undefined, name: string): Uint8Array | null {
  if (value === undefined) return null
  let bytes: Uint8Array
  if (value instanceof Uint8Array) {
    bytes = value
  } else if (typeof value === 'string') {
    try {
      bytes = hexToBytes(value)
    } catch (err) {
      throw new VerifyError('input', `options.${name}: ${err instanceof Error ? err.message : 'not hex'}`)
    }
  } else {
    throw new VerifyError('input', `options.${name}: expected bytes or a hex string`)
  }
  if (bytes.length > MAX_EXPECTED_BYTES) throw new VerifyError('input', `options.${name}: longer than ${MAX_EXPECTED_BYTES} bytes`)
  return bytes
}

function pcrOption(value: unknown): Map<number, Uint8Array> | null {
  if (value === undefined) return null
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new VerifyError('input', 'options.expectedPcrs: expected an object of index → value')
  }
  const out = new Map<number, Uint8Array>()
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!/^(0|[1-9][0-9]?)$/.test(key) || Number(key) > MAX_PCR_INDEX) {
      throw new VerifyError('input', `options.expectedPcrs: index ${JSON.stringify(key)} is not in 0..${MAX_PCR_INDEX}`)
    }
    const bytes = bytesOption(raw as BytesLike, `expectedPcrs[${key}]`)
    if (bytes === null || bytes.length !== PCR_BYTES) {
      throw new VerifyError('input', `options.expectedPcrs[${key}]: expected ${PCR_BYTES} bytes (SHA-384)`)
    }
    out.set(Number(key), bytes)
  }
  return out.size === 0 ? null : out
}

/** Throws VerifyError('input') describing the first bad option. */
export function normalizeOptions(options: unknown): NormalizedOptions {
  if (options === undefined || options === null) options = {}
  if (typeof options !== 'object') throw new VerifyError('input', 'options: expected an object')
  const o = options as VerifyOptions
  if (o.anyPcrs !== undefined && typeof o.anyPcrs !== 'boolean') throw new VerifyError('input', 'options.anyPcrs: expected a boolean')
  const root = o.root === undefined ? pinnedAwsRoot() : parseRoot(o.root)
  return {
    nowMs: toUnixMillis(o.now),
    root,
    awsRoot: o.root === undefined || bytesEqual(root, pinnedAwsRoot()),
    expectedPcrs: pcrOption(o.expectedPcrs),
    anyPcrs: o.anyPcrs === true,
    publicKey: bytesOption(o.publicKey, 'publicKey'),
    nonce: bytesOption(o.nonce, 'nonce'),
    userData: bytesOption(o.userData, 'userData'),
  }
}
