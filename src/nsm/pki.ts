// The simulator's own PKI, shaped like the AWS Nitro attestation PKI (root → regional →
// zonal → instance → per-enclave leaf, P-384 / ecdsa-with-SHA384, the same extensions per
// level) so that documents exercise every step of a real verifier. Nothing trusts it
// unless its root is handed to the verifier explicitly.
//
// The four CA levels are kept in one file in the state directory so that a service and a
// CLI on the same machine agree on the root; the leaf belongs to one simulated enclave and
// lives in memory only, as a real enclave's leaf does.
// @peculiar/x509 registers its classes with tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { bytesToHex } from '@noble/hashes/utils.js'
import { derToPem } from '../../nec01/cert.js'
import { createPrivateKey, createPublicKey, KeyObject, randomBytes, webcrypto } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { writeTempFile } from '../files.js'
import { NsmError } from './types.js'

// x509 signs and verifies through whatever WebCrypto it is given; on Node that is node:crypto's
x509.cryptoProvider.set(webcrypto)

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair

const subtle = webcrypto.subtle

export const CA_LEVELS = ['root', 'regional', 'zonal', 'instance'] as const
export type CaLevel = (typeof CA_LEVELS)[number]
export type CertLevel = CaLevel | 'leaf'

const SECONDS_PER_DAY = 86_400

/** The AWS root G1 lives 30 years (nsm-api docs/attestation_process.md §2.1). */
export const ROOT_LIFETIME_YEARS = 30
/** Observed in real documents: regional certificates live ~20 days, zonal ~6, instance 1 day. */
export const REGIONAL_LIFETIME_SEC = 20 * SECONDS_PER_DAY
export const ZONAL_LIFETIME_SEC = 6 * SECONDS_PER_DAY
export const INSTANCE_LIFETIME_SEC = SECONDS_PER_DAY
/** Real leaves live ~3 hours and are reused across documents (fixtures README). */
export const DEFAULT_LEAF_LIFETIME_SEC = 3 * 3600
/** Renew the leaf when less than this is left, so a fresh document never rides a dying leaf. */
export const DEFAULT_LEAF_RENEW_MARGIN_SEC = 15 * 60

/**
 * CA certificates start this long before they are issued. Two processes that create the CA
 * at the same moment read the clock a few milliseconds apart; without the margin the one
 * whose reading lies before the winner's notBefore (a second boundary between them) finds
 * the winner's root "not yet valid", mints another one and replaces the file, so the two
 * end up on different roots.
 */
export const CA_BACKDATE_SEC = 60

/** Clearly fake identity of the simulated parent instance, in the real shapes. */
export const SIM_INSTANCE_ID = 'i-00000000000000000'
export const SIM_REGION = 'sim-local-1'
const SIM_ORGANIZATION = 'nec01 simulator'
const NOT_AWS = 'NOT AWS'

/** Where the CA levels and the exported root live inside the state directory. */
export const SIM_STATE_SUBDIR = 'nsm-simulator'
const CA_FILE = 'ca.json'
const ROOT_PEM_FILE = 'root.pem'
const CA_FILE_FORMAT = 'nec01-nsm-simulator-ca/1'

const EC_PARAMS: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-384' }
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-384' }
const NODE_CURVE_NAME = 'secp384r1'

const CA_KEY_USAGES =
  x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
const LEAF_KEY_USAGES = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation

export interface IssuedCert {
  level: CertLevel
  der: Uint8Array
  cert: x509.X509Certificate
  /** WebCrypto key, used to issue the next level */
  privateKey: CryptoKey
  /** hex key id of the SubjectKeyIdentifier (CA levels) */
  keyId: string | null
  /** validity in milliseconds since the epoch */
  notBefore: number
  notAfter: number
}

export interface CaChain {
  root: IssuedCert
  regional: IssuedCert
  zonal: IssuedCert
  instance: IssuedCert
}

export interface Leaf extends IssuedCert {
  /** node:crypto key for signing COSE_Sign1 documents */
  signingKey: KeyObject
}

export interface ChainOptions {
  stateDir: string
  /** validation and issuing time, ms since the epoch */
  now: number
  /** the instance certificate must outlive a leaf issued now */
  leafLifetimeSec: number
}

export function simulatorDir(stateDir: string): string {
  return join(stateDir, SIM_STATE_SUBDIR)
}

export function rootPemPath(stateDir: string): string {
  return join(simulatorDir(stateDir), ROOT_PEM_FILE)
}

/**
 * A level is renewed when less than its child's lifetime is left, so every child issued now
 * fits inside its parent's validity; the instance must outlive a fresh leaf.
 */
function renewThresholdSec(level: CaLevel, leafLifetimeSec: number): number {
  switch (level) {
    case 'root':
      return REGIONAL_LIFETIME_SEC
    case 'regional':
      return ZONAL_LIFETIME_SEC
    case 'zonal':
      return INSTANCE_LIFETIME_SEC
    case 'instance':
      return leafLifetimeSec
  }
}

function lifetimeEnd(level: CaLevel, start: Date): Date {
  if (level === 'root') {
    const end = new Date(start.getTime())
    end.setUTCFullYear(end.getUTCFullYear() + ROOT_LIFETIME_YEARS)
    return end
  }
  const seconds = level === 'regional' ? REGIONAL_LIFETIME_SEC : level === 'zonal' ? ZONAL_LIFETIME_SEC : INSTANCE_LIFETIME_SEC
  return new Date(start.getTime() + seconds * 1000)
}

/** A DER INTEGER serial must be positive and minimally encoded. */
function serialHex(bytes: Uint8Array): string {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const trimmed = bytes.subarray(start)
  const first = trimmed[0] ?? 0
  return (first & 0x80 ? '00' : '') + bytesToHex(trimmed.length > 0 ? trimmed : Uint8Array.of(1))
}

function randomSerial(length: number): string {
  const bytes = new Uint8Array(randomBytes(length))
  // keep the serial positive and of the full length, like the real ones
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01
  return serialHex(bytes)
}

function levelName(level: CaLevel, tag: string): x509.JsonName {
  switch (level) {
    case 'root':
      return [{ O: [SIM_ORGANIZATION] }, { OU: ['simulated NSM'] }, { CN: [`nec01 simulated NSM root — ${NOT_AWS}`] }]
    case 'regional':
      return [{ O: [SIM_ORGANIZATION] }, { OU: ['simulated NSM'] }, { CN: [`${tag}.${SIM_REGION}.nec01-sim — ${NOT_AWS}`] }]
    case 'zonal':
      return [{ O: [SIM_ORGANIZATION] }, { OU: ['simulated NSM'] }, { CN: [`${tag}.zonal.${SIM_REGION}.nec01-sim — ${NOT_AWS}`] }]
    case 'instance':
      return [{ O: [SIM_ORGANIZATION] }, { OU: ['simulated NSM'] }, { CN: [`${SIM_INSTANCE_ID}.${SIM_REGION}.nec01-sim — ${NOT_AWS}`] }]
  }
}

function leafName(moduleId: string): x509.JsonName {
  return [{ O: [SIM_ORGANIZATION] }, { OU: [`simulated NSM — ${NOT_AWS}`] }, { CN: [`${moduleId}.${SIM_REGION}.sim`] }]
}

function crlUrl(level: 'regional' | 'zonal', tag: string): string {
  // .invalid (RFC 2606) never resolves: the extension is there for shape, not for use
  return `http://crl.nec01-simulator.invalid/${level}/${tag}.crl`
}

async function caExtensions(
  level: CaLevel,
  tag: string,
  publicKey: CryptoKey,
  parent: IssuedCert | null,
): Promise<x509.Extension[]> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(publicKey, false)
  const aki = (): x509.Extension => {
    if (parent === null || parent.keyId === null) throw new NsmError('InternalError', `${level} certificate needs an issuer key id`)
    return new x509.AuthorityKeyIdentifierExtension(parent.keyId, false)
  }
  // same extensions, criticality and order as the AWS certificates at each level
  switch (level) {
    case 'root':
      return [new x509.BasicConstraintsExtension(true, undefined, true), ski, new x509.KeyUsagesExtension(CA_KEY_USAGES, true)]
    case 'regional':
    case 'zonal':
      return [
        new x509.BasicConstraintsExtension(true, level === 'regional' ? 2 : 1, true),
        aki(),
        ski,
        new x509.KeyUsagesExtension(CA_KEY_USAGES, true),
        new x509.CRLDistributionPointsExtension([crlUrl(level, tag)], false),
      ]
    case 'instance':
      return [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        ski,
        aki(),
      ]
  }
}

function secondsFloor(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000)
}

async function issueCa(level: CaLevel, parent: IssuedCert | null, now: number): Promise<IssuedCert> {
  const keys = (await subtle.generateKey(EC_PARAMS, true, ['sign', 'verify'])) as CryptoKeyPair
  const tag = bytesToHex(randomBytes(8))
  const notBefore = secondsFloor(now - CA_BACKDATE_SEC * 1000)
  const notAfter = lifetimeEnd(level, notBefore)
  const subject = levelName(level, tag)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(level === 'instance' ? 20 : 16),
    subject,
    issuer: parent === null ? subject : parent.cert.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: parent === null ? keys.privateKey : parent.privateKey,
    extensions: await caExtensions(level, tag, keys.publicKey, parent),
  })
  return toIssued(level, cert, keys.privateKey)
}

function toIssued(level: CertLevel, cert: x509.X509Certificate, privateKey: CryptoKey): IssuedCert {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)
  return {
    level,
    der: new Uint8Array(cert.rawData),
    cert,
    privateKey,
    keyId: ski?.keyId ?? null,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
  }
}

export interface LeafOptions {
  moduleId: string
  /** the 8-byte enclave id; the real leaf serial is enclave id ‖ 0^4 ‖ notBefore seconds */
  enclaveId: Uint8Array
  now: number
  lifetimeSec: number
}

/** Issue a leaf for one simulated enclave under the instance certificate. */
export async function issueLeaf(chain: CaChain, options: LeafOptions): Promise<Leaf> {
  const keys = (await subtle.generateKey(EC_PARAMS, true, ['sign', 'verify'])) as CryptoKeyPair
  const notBefore = secondsFloor(options.now)
  const notAfter = new Date(notBefore.getTime() + options.lifetimeSec * 1000)
  const serial = new Uint8Array(16)
  serial.set(options.enclaveId.subarray(0, 8), 0)
  new DataView(serial.buffer).setUint32(12, Math.floor(notBefore.getTime() / 1000) >>> 0)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex(serial),
    subject: leafName(options.moduleId),
    issuer: chain.instance.cert.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: chain.instance.privateKey,
    // the real leaf has exactly these two, and no key identifiers
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(LEAF_KEY_USAGES, false),
    ],
  })
  return { ...toIssued('leaf', cert, keys.privateKey), signingKey: KeyObject.from(keys.privateKey) }
}

interface StoredLevel {
  certificate: string
  privateKey: string
}

interface StoredCa {
  format: typeof CA_FILE_FORMAT
  levels: Record<CaLevel, StoredLevel>
}

function stateError(message: string, cause: unknown): NsmError {
  const detail = cause instanceof Error ? `: ${cause.message}` : ''
  return new NsmError('StateError', `${message}${detail}`, { cause })
}

interface StoredState {
  /** the file exists: replace it rather than race to create it */
  exists: boolean
  levels: Partial<Record<CaLevel, StoredLevel>>
}

/**
 * A CA file that exists but is damaged is an error, not a reason to mint a new root: a
 * verifier may have pinned the old root.pem, and the file holds private keys that should
 * not vanish silently. The message names the file and the way out.
 */
function corruptState(path: string, problem: string): NsmError {
  return new NsmError(
    'StateError',
    `the simulator CA file ${path} is corrupt (${problem}); remove it to create a new simulated CA with a new root`,
  )
}

function readStoredCa(path: string): StoredState {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, levels: {} }
    throw stateError(`cannot read ${path}`, error)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw corruptState(path, text.length === 0 ? 'empty' : 'not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null) throw corruptState(path, 'not a JSON object')
  const record = parsed as { format?: unknown; levels?: unknown }
  if (record.format !== CA_FILE_FORMAT) throw corruptState(path, `format is not ${CA_FILE_FORMAT}`)
  if (typeof record.levels !== 'object' || record.levels === null) throw corruptState(path, 'no levels')
  const entries = record.levels as Record<string, unknown>
  const levels: Partial<Record<CaLevel, StoredLevel>> = {}
  for (const level of CA_LEVELS) {
    const entry = entries[level]
    if (typeof entry !== 'object' || entry === null) throw corruptState(path, `no ${level} level`)
    const { certificate, privateKey } = entry as Record<string, unknown>
    if (typeof certificate !== 'string' || typeof privateKey !== 'string') {
      throw corruptState(path, `the ${level} level lacks its certificate or key`)
    }
    levels[level] = { certificate, privateKey }
  }
  return { exists: true, levels }
}

/**
 * Parse and check one stored level. Null when it is sound but due for renewal (not yet valid,
 * or too close to expiry); a damaged level (bad encoding, key and certificate that do not
 * belong together, a broken link to its parent) fails with StateError.
 */
async function loadLevel(
  level: CaLevel,
  stored: StoredLevel,
  parent: IssuedCert | null,
  options: ChainOptions,
  path: string,
): Promise<IssuedCert | null> {
  const corrupt = (problem: string): NsmError => corruptState(path, `${level}: ${problem}`)
  let cert: x509.X509Certificate
  let pkcs8: Buffer
  let nodeKey: KeyObject
  try {
    cert = new x509.X509Certificate(Buffer.from(stored.certificate, 'base64'))
  } catch {
    throw corrupt('the certificate does not parse')
  }
  try {
    pkcs8 = Buffer.from(stored.privateKey, 'base64')
    nodeKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
  } catch {
    throw corrupt('the private key does not parse')
  }
  if (nodeKey.asymmetricKeyType !== 'ec' || nodeKey.asymmetricKeyDetails?.namedCurve !== NODE_CURVE_NAME) {
    throw corrupt('the private key is not P-384')
  }
  const spki = createPublicKey(nodeKey).export({ type: 'spki', format: 'der' })
  if (!Buffer.from(cert.publicKey.rawData).equals(spki)) throw corrupt('the private key does not match the certificate')
  const issuerCert = parent === null ? cert : parent.cert
  if (!sameName(cert.issuerName, issuerCert.subjectName)) throw corrupt('the issuer name is not the parent subject')
  let verified = false
  try {
    verified = await cert.verify({ publicKey: issuerCert.publicKey, signatureOnly: true })
  } catch {
    verified = false
  }
  if (!verified) throw corrupt('the certificate signature does not verify')
  let privateKey: CryptoKey
  try {
    privateKey = await subtle.importKey('pkcs8', pkcs8, EC_PARAMS, true, ['sign'])
  } catch {
    throw corrupt('the private key does not import')
  }
  const issued = toIssued(level, cert, privateKey)
  if (level !== 'root' && issued.keyId === null) throw corrupt('no subject key identifier')
  const threshold = renewThresholdSec(level, options.leafLifetimeSec) * 1000
  if (cert.notBefore.getTime() > options.now || cert.notAfter.getTime() - options.now < threshold) return null
  return issued
}

function sameName(a: x509.Name, b: x509.Name): boolean {
  return Buffer.from(a.toArrayBuffer()).equals(Buffer.from(b.toArrayBuffer()))
}

async function exportLevel(issued: IssuedCert): Promise<StoredLevel> {
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', issued.privateKey))
  return { certificate: Buffer.from(issued.der).toString('base64'), privateKey: Buffer.from(pkcs8).toString('base64') }
}

const PRIVATE_FILE_MODE = 0o600
const PUBLIC_FILE_MODE = 0o644
const STATE_DIR_MODE = 0o700

function writeRootPem(stateDir: string, root: IssuedCert): void {
  const path = rootPemPath(stateDir)
  const pem = derToPem(root.der)
  try {
    if (readFileSync(path, 'utf8') === pem) return
  } catch {
    // absent or unreadable: write it
  }
  const temp = writeTempFile(path, pem, PUBLIC_FILE_MODE)
  renameSync(temp, path)
}

/**
 * Load the CA levels from the state directory, regenerate every level that is not yet valid
 * or too close to expiry (and everything below it), persist the result and export the root
 * as PEM. A damaged file fails with StateError instead (see corruptState). The first
 * creation never overwrites a root another process wrote at the same moment: it links the
 * file into place and, if that fails, loads theirs.
 */
export async function loadOrRenewChain(options: ChainOptions): Promise<CaChain> {
  const dir = simulatorDir(options.stateDir)
  const caPath = join(dir, CA_FILE)
  try {
    mkdirSync(dir, { recursive: true, mode: STATE_DIR_MODE })
  } catch (error) {
    throw stateError(`cannot create the simulator state directory ${dir}`, error)
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const { exists: fileExisted, levels: stored } = readStoredCa(caPath)
    const chain: Partial<CaChain> = {}
    let parent: IssuedCert | null = null
    let changed = false
    for (const level of CA_LEVELS) {
      const entry = stored[level]
      let issued: IssuedCert | null = !changed && entry !== undefined ? await loadLevel(level, entry, parent, options, caPath) : null
      if (issued === null) {
        issued = await issueCa(level, parent, options.now)
        changed = true
      }
      chain[level] = issued
      parent = issued
    }
    const complete = chain as CaChain
    if (!changed) {
      writeStateFile(() => writeRootPem(options.stateDir, complete.root))
      return complete
    }
    const levels = {} as Record<CaLevel, StoredLevel>
    for (const level of CA_LEVELS) levels[level] = await exportLevel(complete[level])
    const record: StoredCa = { format: CA_FILE_FORMAT, levels }
    const placed = writeStateFile(() => {
      const temp = writeTempFile(caPath, `${JSON.stringify(record, null, 2)}\n`, PRIVATE_FILE_MODE)
      if (fileExisted) {
        renameSync(temp, caPath)
        return true
      }
      try {
        linkSync(temp, caPath)
        return true
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
        throw error
      } finally {
        unlinkSync(temp)
      }
    })
    if (placed) {
      writeStateFile(() => writeRootPem(options.stateDir, complete.root))
      return complete
    }
    // another process created the CA first: use theirs
  }
  throw new NsmError('StateError', `the simulator CA in ${caPath} keeps changing under us`)
}

function writeStateFile<T>(write: () => T): T {
  try {
    return write()
  } catch (error) {
    if (error instanceof NsmError) throw error
    throw stateError('cannot write the simulator state', error)
  }
}
