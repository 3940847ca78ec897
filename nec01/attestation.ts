// Verification of a raw NSM attestation document (COSE_Sign1). The checks run in the
// fixed order of CHECK_IDS:
//   input → cose → payload → root → chain → time → signature   (each must pass for the
//   next to mean anything, so the first failure ends the run)
//   → debug → pcrs → pubkey → nonce → user_data                 (policy: all run, so the
//   caller sees every mismatch at once)
// When a stage fails, the policy checks are listed as not checked (result.ts notChecked):
// the caller sees which expectations were never compared, and the result stays invalid.
// pubkey, nonce and user_data appear only when the caller gave that expectation: a check
// that compared nothing would read as a guarantee that was never made.
import { sha256 } from '@noble/hashes/sha2.js'
import { AWS_NITRO_ROOT_G1_SHA256 } from './aws-root.js'
import { checkValidity, isTrustedRoot, verifyChain, type CertWindow, type VerifyKey } from './chain.js'
import { certLabel, parseCertificate } from './cert.js'
import { MAX_PAYLOAD_BYTES, parseCoseSign1, verifyCoseSignature, type CoseSign1 } from './cose.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { bytesEqual, copyBytes } from './encoding.js'
import { normalizeOptions, type NormalizedOptions } from './options.js'
import { parsePayload, type AttestationPayload } from './payload.js'
import { pcrOnce } from './pcr.js'
import { ATTESTATION_FAILED, VerifyError, fail, finish, notChecked, pass } from './result.js'
import { isoTime } from './time.js'
import type { AttestationInfo, Check, CheckId, VerifyOptions, VerifyResult } from './types.js'
import { errorText } from './errors.js'

export { clearVerifierCaches, verifierCacheStats, type VerifierCacheStats } from './chain.js'

/**
 * Largest document accepted: the 16 KiB payload limit (AWS spec §3.1) plus room for the
 * envelope (tag, array header, protected header, 96-byte signature).
 */
export const MAX_DOCUMENT_BYTES = MAX_PAYLOAD_BYTES + 1024

/** The parsed fields of a document plus its COSE parts; nothing here is verified. */
export interface DecodedAttestation extends AttestationPayload {
  /** protected header bstr as sent */
  protected: Uint8Array
  /** payload bstr as sent (the signed CBOR) */
  payload: Uint8Array
  /** raw r‖s ES384 signature */
  signature: Uint8Array
  /** whether the envelope carried CBOR tag 18 */
  tagged: boolean
}

function checkInputBytes(doc: unknown): Uint8Array<ArrayBuffer> {
  if (!(doc instanceof Uint8Array)) {
    const kind = doc === null ? 'null' : Array.isArray(doc) ? 'array' : typeof doc
    throw new VerifyError('input', `expected the document as a Uint8Array, got ${kind}`)
  }
  if (doc.length === 0) throw new VerifyError('input', 'document is empty')
  if (doc.length > MAX_DOCUMENT_BYTES) throw new VerifyError('input', `document is ${doc.length} bytes; at most ${MAX_DOCUMENT_BYTES} accepted`)
  // Own copy: the caller's buffer could change while signatures are being checked.
  return copyBytes(doc)
}

/** Decodes a document without verifying anything. Throws VerifyError ('input', 'cose' or 'payload'). */
export function decodeAttestation(doc: Uint8Array): DecodedAttestation {
  const bytes = checkInputBytes(doc)
  const cose = parseCoseSign1(bytes)
  const payload = parsePayload(cose.payload)
  return { ...payload, protected: cose.protected, payload: cose.payload, signature: cose.signature, tagged: cose.tagged }
}

/** Shortened hex for messages; full when the shortened forms would look equal. */
function shortPair(expected: Uint8Array, got: Uint8Array): [string, string] {
  const a = bytesToHex(expected)
  const b = bytesToHex(got)
  const cut = (h: string): string => (h.length > 16 ? `${h.slice(0, 12)}…` : h)
  return cut(a) === cut(b) ? [a, b] : [cut(a), cut(b)]
}

/**
 * PCR16 is the first user-extendable PCR. An enclave that binds its key extends it once,
 * from zero, with SHA-256(public_key): PCR16 = SHA-384(0^48 ‖ SHA-256(public_key)).
 */
function pcr16Binds(payload: AttestationPayload): boolean | null {
  const pcr16 = payload.pcrs.get(16)
  if (pcr16 === undefined || payload.public_key === null) return null
  // Two tiny hashes on every verification, cached paths included: synchronous noble hashing
  // costs microseconds where two awaited WebCrypto digests cost ~80 µs (bench/).
  return bytesEqual(pcrOnce(sha256(payload.public_key)), pcr16)
}

function hexOrNull(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : bytesToHex(bytes)
}

/** The report's fields read from the payload alone: everything but the certificate windows. */
type PayloadInfo = Omit<AttestationInfo, 'certificate' | 'chain'>

function payloadInfo(payload: AttestationPayload): PayloadInfo {
  const pcrs: Record<string, string> = {}
  // integer-like keys enumerate in ascending order whatever the insertion order (ECMA-262 OrdinaryOwnPropertyKeys)
  for (const [index, value] of payload.pcrs) pcrs[index] = bytesToHex(value)
  return {
    module_id: payload.module_id,
    timestamp: payload.timestamp,
    digest: payload.digest,
    pcrs,
    public_key: hexOrNull(payload.public_key),
    user_data: hexOrNull(payload.user_data),
    nonce: hexOrNull(payload.nonce),
    pcr16_binds_public_key: pcr16Binds(payload),
  }
}

function attestationInfo(info: PayloadInfo, windows: CertWindow[]): AttestationInfo {
  const leaf = windows[windows.length - 1]!
  // The path is valid where every certificate is: the latest notBefore to the earliest notAfter.
  const pathFrom = Math.max(...windows.map((w) => w.notBefore))
  const pathUntil = Math.min(...windows.map((w) => w.notAfter))
  // the fields in the order the report has always listed them (JSON output follows it)
  return {
    module_id: info.module_id,
    timestamp: info.timestamp,
    digest: info.digest,
    pcrs: info.pcrs,
    public_key: info.public_key,
    user_data: info.user_data,
    nonce: info.nonce,
    certificate: { notBefore: leaf.notBefore / 1000, notAfter: leaf.notAfter / 1000 },
    chain: { notBefore: pathFrom / 1000, notAfter: pathUntil / 1000 },
    pcr16_binds_public_key: info.pcr16_binds_public_key,
  }
}

function coseSummary(bytes: Uint8Array, cose: CoseSign1): string {
  return `${bytes.length}-byte COSE_Sign1 (${cose.tagged ? 'tag 18' : 'untagged'}): protected {1: -35} ES384, empty unprotected header, ${cose.payload.length}-byte payload, 96-byte signature`
}

function payloadSummary(p: AttestationPayload): string {
  const optional = (['public_key', 'user_data', 'nonce'] as const).map((k) => `${k} ${p[k] === null ? 'null' : `${p[k]!.length} B`}`)
  return `module_id ${p.module_id}, ${p.pcrs.size} SHA384 PCRs, timestamp ${isoTime(p.timestamp)}, cabundle of ${p.cabundle.length}, ${optional.join(', ')}`
}

function checkDebug(checks: Check[], pcrs: Map<number, Uint8Array>): void {
  const missing = [0, 1, 2].filter((i) => !pcrs.has(i))
  if (missing.length > 0) {
    fail(checks, 'debug', `${missing.map((i) => `PCR${i}`).join(', ')} missing: cannot rule out debug mode`)
    return
  }
  // Nitro debug mode zeroes PCR0, PCR1 and PCR2 (AWS Nitro Enclaves User Guide, "Debug
  // mode"): the parent can read the enclave's console, so its keys are not its own.
  const zero = [0, 1, 2].every((i) => pcrs.get(i)!.every((b) => b === 0))
  if (zero) fail(checks, 'debug', 'PCR0, PCR1 and PCR2 are all zero: a debug-mode enclave, never trusted')
  else pass(checks, 'debug', 'not a debug-mode enclave (PCR0/1/2 not all zero)')
}

function checkPcrs(checks: Check[], pcrs: Map<number, Uint8Array>, opts: NormalizedOptions): void {
  if (opts.expectedPcrs === null) {
    if (opts.anyPcrs) pass(checks, 'pcrs', 'any PCRs accepted (anyPcrs): proves a Nitro enclave ran, not which image')
    else fail(checks, 'pcrs', 'no expected PCRs given')
    return
  }
  const problems: string[] = []
  const matched: string[] = []
  for (const [index, expected] of [...opts.expectedPcrs].sort((a, b) => a[0] - b[0])) {
    const got = pcrs.get(index)
    if (got === undefined) {
      problems.push(`PCR${index} expected ${shortPair(expected, expected)[0]} but the document has no PCR${index}`)
    } else if (!bytesEqual(expected, got)) {
      const [e, g] = shortPair(expected, got)
      problems.push(`PCR${index} expected ${e} got ${g}`)
    } else {
      matched.push(`PCR${index}`)
    }
  }
  if (problems.length > 0) fail(checks, 'pcrs', problems.join('; '))
  else pass(checks, 'pcrs', `${matched.join(', ')} match the expected values`)
}

function checkField(checks: Check[], id: CheckId, name: string, expected: Uint8Array | null, got: Uint8Array | null): void {
  if (expected === null) return
  if (got === null) {
    fail(checks, id, `expected ${name} ${shortPair(expected, expected)[0]} but the document has none`)
  } else if (!bytesEqual(expected, got)) {
    const [e, g] = shortPair(expected, got)
    fail(checks, id, `${name} expected ${e} got ${g}`)
  } else {
    pass(checks, id, `${name} equals the expected ${bytesToHex(expected)}`)
  }
}

/** The checks of what the document says, run once it has verified. */
const POLICY_CHECKS: CheckId[] = ['debug', 'pcrs', 'pubkey', 'nonce', 'user_data']

/** The policy checks a stopped run did not reach, each as not checked. */
function policyNotChecked(checks: Check[], opts: NormalizedOptions): Check[] {
  notChecked(checks, 'debug', ATTESTATION_FAILED)
  notChecked(checks, 'pcrs', ATTESTATION_FAILED)
  if (opts.publicKey !== null) notChecked(checks, 'pubkey', ATTESTATION_FAILED)
  if (opts.nonce !== null) notChecked(checks, 'nonce', ATTESTATION_FAILED)
  if (opts.userData !== null) notChecked(checks, 'user_data', ATTESTATION_FAILED)
  return checks
}

/** "CN=…" of cabundle[0], so a root mismatch says which root the document has. */
function rootLabel(der: Uint8Array): string {
  try {
    return certLabel(parseCertificate(der))
  } catch {
    return 'an unparseable certificate'
  }
}

/**
 * Verifies an NSM attestation document against the trusted root (default: the pinned
 * AWS Nitro root G1) at options.now, then the caller's expectations. Never throws: any
 * problem is a failed check. `attestation` is filled in once the certificate path has
 * verified, so it is present for time, signature and policy failures too; it is only
 * trustworthy when `valid` is true.
 */
export async function verifyAttestation(doc: Uint8Array, options?: VerifyOptions): Promise<VerifyResult> {
  const checks: Check[] = []
  let attestation: AttestationInfo | null = null
  let opts: NormalizedOptions | null = null
  let stage: CheckId = 'input'
  // a stage failed: the policy checks did not run (none when the options were malformed)
  const stop = (): VerifyResult => finish(opts === null ? checks : policyNotChecked(checks, opts), attestation)
  try {
    const bytes = checkInputBytes(doc)
    opts = normalizeOptions(options)
    pass(checks, 'input', `${bytes.length}-byte document`)

    stage = 'cose'
    const cose = parseCoseSign1(bytes)
    pass(checks, 'cose', coseSummary(bytes, cose))

    stage = 'payload'
    const payload = parsePayload(cose.payload)
    pass(checks, 'payload', payloadSummary(payload))

    stage = 'root'
    const rootName = opts.awsRoot ? `the pinned AWS Nitro root G1 (SHA-256 ${AWS_NITRO_ROOT_G1_SHA256.slice(0, 12)}…)` : 'the given trusted root'
    if (!isTrustedRoot(payload.cabundle[0]!, opts.root)) {
      fail(checks, 'root', `cabundle[0] (${rootLabel(payload.cabundle[0]!)}) is not byte-identical to ${rootName}`)
      return stop()
    }
    pass(checks, 'root', `cabundle[0] is ${rootName}`)

    stage = 'chain'
    // the document signature is checked together with the path (concurrently on a cold
    // path); it is reported only after the path and the validity period have passed
    let info: PayloadInfo | null = null
    const signed = (leafKey: VerifyKey): Promise<boolean> => {
      const verdict = verifyCoseSignature(leafKey, cose)
      // a cold path's links are on the thread pool now: this thread writes the report meanwhile
      info = payloadInfo(payload)
      return verdict
    }
    const chain = await verifyChain(opts.root, payload.cabundle, payload.certificate, signed)
    pass(
      checks,
      'chain',
      `${chain.windows.length - 1} ES384 certificate signatures verify from the root to the leaf; names chain, CA flags, keyUsage and pathLen hold${chain.cached ? ' (cached path)' : ''}`,
    )
    attestation = attestationInfo(info ?? payloadInfo(payload), chain.windows)

    stage = 'time'
    const time = checkValidity(chain.windows, opts.nowMs)
    if (!time.ok) {
      fail(checks, 'time', time.detail)
      return stop()
    }
    pass(checks, 'time', time.detail)

    stage = 'signature'
    if ((await chain.alongside) !== true) {
      fail(checks, 'signature', 'ES384 signature does not verify with the leaf key')
      return stop()
    }
    pass(checks, 'signature', 'ES384 signature by the leaf key verifies')

    stage = 'debug'
    checkDebug(checks, payload.pcrs)
    stage = 'pcrs'
    checkPcrs(checks, payload.pcrs, opts)
    stage = 'pubkey'
    checkField(checks, 'pubkey', 'public_key', opts.publicKey, payload.public_key)
    stage = 'nonce'
    checkField(checks, 'nonce', 'nonce', opts.nonce, payload.nonce)
    stage = 'user_data'
    checkField(checks, 'user_data', 'user_data', opts.userData, payload.user_data)
    return finish(checks, attestation)
  } catch (err) {
    if (err instanceof VerifyError) fail(checks, err.code, err.message)
    else fail(checks, stage, `unexpected error: ${errorText(err)}`)
    // a throw among the policy checks themselves is not a stopped run
    return POLICY_CHECKS.includes(stage) ? finish(checks, attestation) : stop()
  }
}
