// Certificate path validation for a Nitro attestation (RFC 5280 §6, profiled by
// aws-nitro-enclaves-nsm-api docs/attestation_process.md §3.2.3):
//   trusted root = cabundle[0] → cabundle[1] → … → cabundle[n-1] → certificate (leaf)
// and a bounded cache of verified paths, because a real NSM reuses one leaf for ~3 hours.
import { certLabel, parseCertificate, KEY_USAGE, type Certificate } from './cert.js'
import { importP384, verifyEs384, verifyEs384Concurrent, type VerifyKey } from '#es384'
import { bytesEqual, bytesToKey, copyBytes } from './encoding.js'
import { createLru } from './lru.js'
import { VerifyError } from './result.js'
import { isoTime } from './time.js'

// WebCrypto in browsers, node:crypto under Node: package.json `imports` picks (nec01/es384.ts)
export { importP384, verifyEs384, type VerifyKey }

/** Verified paths remembered: a few hundred enclaves' chains, ~1 KiB of key bytes each. */
export const CHAIN_CACHE_LIMIT = 256
/** Parsed and imported trusted roots remembered (normally one: the AWS root). */
const ROOT_CACHE_LIMIT = 16

export interface CertWindow {
  label: string
  /** ms since the epoch, inclusive */
  notBefore: number
  notAfter: number
}

export interface VerifiedChain {
  /** the leaf's public key, for the document signature */
  leafKey: VerifyKey
  /** every certificate's validity, root first; checked against `now` on every use */
  windows: CertWindow[]
  /** true when this path came from the cache */
  cached: boolean
  /**
   * the `alongside` verification, when one was given, still running: the caller does its
   * own work while the thread pool checks the signature, and awaits it when it needs the
   * verdict. Never rejects (a failure is false).
   */
  alongside: Promise<boolean> | null
}

interface TrustedRoot {
  cert: Certificate
  key: VerifyKey
}

interface CachedChain extends Omit<VerifiedChain, 'cached' | 'alongside'> {
  /** own copies of the trusted root and cabundle this path was verified with */
  root: Uint8Array
  cabundle: Uint8Array[]
}

/** Keyed by the leaf's exact DER (short, and what real NSMs reuse); the rest is compared on a hit. */
const chainCache = createLru<string, CachedChain>(CHAIN_CACHE_LIMIT)
const rootCache = createLru<string, TrustedRoot>(ROOT_CACHE_LIMIT)
let hits = 0
let misses = 0

/** Forgets every verified path and root, and zeroes the counters (benchmarks measure cold). */
export function clearVerifierCaches(): void {
  chainCache.clear()
  rootCache.clear()
  hits = 0
  misses = 0
}

export interface VerifierCacheStats {
  /** verifications that reused a verified path */
  hits: number
  /** verifications that had to validate the path */
  misses: number
  /** paths currently remembered */
  size: number
}

export function verifierCacheStats(): VerifierCacheStats {
  return { hits, misses, size: chainCache.size }
}

/** The rest of the path a cached entry was verified with; a hit needs every byte equal. */
function samePath(entry: CachedChain, root: Uint8Array, cabundle: Uint8Array[]): boolean {
  if (!bytesEqual(entry.root, root) || entry.cabundle.length !== cabundle.length) return false
  for (let i = 0; i < cabundle.length; i++) if (!bytesEqual(entry.cabundle[i]!, cabundle[i]!)) return false
  return true
}

function chainError(message: string): VerifyError {
  return new VerifyError('chain', message)
}

async function trustedRoot(der: Uint8Array): Promise<TrustedRoot> {
  const id = bytesToKey(der)
  const known = rootCache.peek(id)
  if (known !== undefined) return known
  let cert: Certificate
  try {
    cert = parseCertificate(der)
  } catch (err) {
    throw chainError(`root: ${err instanceof Error ? err.message : 'unparseable'}`)
  }
  const key = await importP384(cert.publicKey).catch(() => null)
  if (key === null) throw chainError('root: public key is not a valid P-384 point')
  const root = { cert, key }
  rootCache.set(id, root)
  return root
}

/** cabundle[0] must be the trusted root byte for byte: subject and serial can be copied, bytes cannot. */
export function isTrustedRoot(cabundle0: Uint8Array, root: Uint8Array): boolean {
  return bytesEqual(cabundle0, root)
}

/**
 * CA rules for the certificate at `index` (0 = root) of a path of `length` certificates
 * (RFC 5280 §4.2.1.9, §4.2.1.3, §6.1.4 (k)-(n)). pathLenConstraint counts the CA
 * certificates below this one; no intermediate is treated as self-issued, which can only
 * make the count stricter.
 */
function checkCa(cert: Certificate, label: string, index: number, length: number): void {
  if (cert.ca !== true) throw chainError(`${label} is not a CA (basicConstraints cA is not true) but issues ${index === length - 2 ? 'the leaf' : 'a CA'}`)
  if (cert.keyUsage === null || (cert.keyUsage & KEY_USAGE.keyCertSign) === 0) {
    throw chainError(`${label} may not sign certificates (keyUsage lacks keyCertSign)`)
  }
  const below = length - 2 - index
  if (cert.pathLen !== null && below > cert.pathLen) {
    throw chainError(`${label} allows ${cert.pathLen} CA certificate(s) below it (pathLenConstraint), the path has ${below}`)
  }
}

function checkLeaf(cert: Certificate, label: string): void {
  if (cert.ca === true) throw chainError(`${label} is a CA (basicConstraints cA true); the document signer must be an end entity`)
  if (cert.pathLen !== null) throw chainError(`${label} has a pathLenConstraint but is not a CA`)
  // attestation_process.md §3.2.3.3: the target certificate has digitalSignature
  if (cert.keyUsage === null || (cert.keyUsage & KEY_USAGE.digitalSignature) === 0) {
    throw chainError(`${label} keyUsage lacks digitalSignature`)
  }
}

/**
 * Validates the path from the trusted root (which the caller has matched to cabundle[0])
 * to the leaf: structure, names, CA constraints, then every signature. Validity periods
 * are NOT checked here but returned, so a cached path is re-checked against each `now`.
 * `alongside` (the document signature) runs with the leaf key concurrently with the link
 * signatures; it is returned still running, and its verdict means nothing unless the path
 * verified.
 * Throws VerifyError('chain').
 */
export async function verifyChain(
  root: Uint8Array,
  cabundle: Uint8Array[],
  leaf: Uint8Array,
  alongside?: (leafKey: VerifyKey) => Promise<boolean>,
): Promise<VerifiedChain> {
  const key = bytesToKey(leaf)
  const known = chainCache.peek(key)
  if (known !== undefined && samePath(known, root, cabundle)) {
    hits++
    chainCache.get(key)
    const extra = alongside === undefined ? null : alongside(known.leafKey).catch(() => false)
    return { leafKey: known.leafKey, windows: known.windows, cached: true, alongside: extra }
  }
  misses++

  const anchor = await trustedRoot(root)
  const certs: Certificate[] = [anchor.cert]
  const labels: string[] = [`root (${certLabel(anchor.cert)})`]
  const ders = [...cabundle.slice(1), leaf]
  // Each link starts on the thread pool the moment its certificate parses, its issuer's key
  // being in already, and runs while the next certificate parses and its key imports: in a
  // process new to this chain the links, not the parsing, are the long pole. The verdicts
  // are read after every structural check, so failures are reported as if nothing had
  // started; a malformed path may cost the signatures already under way, no more than a
  // well-formed forgery costs.
  const keys: (VerifyKey | null)[] = [anchor.key]
  const linkChecks: Promise<boolean>[] = []
  for (let j = 0; j < ders.length; j++) {
    const name = j === ders.length - 1 ? 'leaf certificate' : `cabundle[${j + 1}]`
    let cert: Certificate
    try {
      cert = parseCertificate(ders[j]!)
    } catch (err) {
      throw chainError(`${name}: ${err instanceof Error ? err.message : 'unparseable'}`)
    }
    const issuerKey = keys[j]!
    linkChecks.push(issuerKey === null ? Promise.resolve(false) : verifyEs384Concurrent(issuerKey, cert.signature, cert.tbs))
    certs.push(cert)
    labels.push(`${name} (${certLabel(cert)})`)
    keys.push(await importP384(cert.publicKey).catch(() => null))
  }

  // Everything else that needs no cryptography first, so a malformed path costs no more.
  const n = certs.length
  for (let i = 1; i < n; i++) {
    // RFC 5280 §6.1.3 (a)(4): issuer equals the working issuer name; compared as DER bytes,
    // which AWS's CAs produce identically (RFC 5280 §7.1 allows binary comparison)
    if (!bytesEqual(certs[i]!.issuer, certs[i - 1]!.subject)) throw chainError(`${labels[i]} was not issued by ${labels[i - 1]} (issuer ≠ subject)`)
    checkCa(certs[i - 1]!, labels[i - 1]!, i - 1, n)
  }
  checkLeaf(certs[n - 1]!, labels[n - 1]!)

  const bad = keys.findIndex((k) => k === null)
  if (bad >= 0) throw chainError(`${labels[bad]}: public key is not a valid P-384 point`)
  const leafKey = keys[n - 1]!
  // the links are under way while `alongside` runs (on this thread, under Node)
  const extra = alongside === undefined ? null : alongside(leafKey).catch(() => false)
  const links = await Promise.all(linkChecks)
  const broken = links.indexOf(false)
  if (broken >= 0) throw chainError(`the signature on ${labels[broken + 1]} does not verify with the key of ${labels[broken]}`)

  const verified: CachedChain = {
    leafKey,
    windows: certs.map((c, i) => ({ label: labels[i]!, notBefore: c.notBefore, notAfter: c.notAfter })),
    root: copyBytes(root),
    cabundle: cabundle.map(copyBytes),
  }
  // Only a fully verified path is remembered; time is not part of the verdict cached.
  chainCache.set(key, verified)
  return { leafKey, windows: verified.windows, cached: false, alongside: extra }
}

export interface TimeVerdict {
  ok: boolean
  detail: string
}

/** Every certificate valid at `nowMs`, both bounds inclusive (RFC 5280 §4.1.2.5). */
export function checkValidity(windows: CertWindow[], nowMs: number): TimeVerdict {
  const at = `validation time ${isoTime(nowMs)}`
  let from = -Infinity
  let until = Infinity
  for (const w of windows) {
    if (nowMs < w.notBefore) return { ok: false, detail: `${w.label} is not valid before ${isoTime(w.notBefore)}; ${at}` }
    if (nowMs > w.notAfter) return { ok: false, detail: `${w.label} expired at ${isoTime(w.notAfter)}; ${at}` }
    from = Math.max(from, w.notBefore)
    until = Math.min(until, w.notAfter)
  }
  return { ok: true, detail: `all ${windows.length} certificates valid at ${isoTime(nowMs)} (path valid ${isoTime(from)} .. ${isoTime(until)})` }
}
