// Builders for forged and simulated attestation documents, used by the verifier tests:
// a small DER writer for X.509 certificates (so a test controls every byte: the exact
// AWS subject Name, serials, CA flags, keyUsage, pathLen), P-384 keys and signatures from
// node:crypto, and COSE_Sign1 envelopes encoded with cbor-x.
import { Encoder } from 'cbor-x'
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'

// ---- CBOR ---------------------------------------------------------------------------

// useTag259ForMaps is honoured by cbor-x 1.6 but missing from its Options type
const encoderOptions = { useRecords: false, tagUint8Array: false, mapsAsObjects: false, useTag259ForMaps: false, variableMapSize: true }
const encoder = new Encoder(encoderOptions as ConstructorParameters<typeof Encoder>[0])

/** Plain CBOR: Maps as maps, Uint8Array as bstr. Integers ≥ 2^32 must be bigint (cbor-x writes large numbers as floats). */
export function cbor(value: unknown): Uint8Array {
  return new Uint8Array(encoder.encode(value))
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** A CBOR map written entry by entry (lets a test repeat a key or use indefinite length). */
export function rawMap(entries: [unknown, unknown][], indefinite = false): Uint8Array {
  const head = indefinite ? Uint8Array.of(0xbf) : cborHeader(5, entries.length)
  const body = entries.flatMap(([k, v]) => [cbor(k), cbor(v)])
  return concat(head, ...body, indefinite ? Uint8Array.of(0xff) : new Uint8Array(0))
}

export function cborHeader(major: number, n: number): Uint8Array {
  const mt = major << 5
  if (n < 24) return Uint8Array.of(mt | n)
  if (n < 0x100) return Uint8Array.of(mt | 24, n)
  if (n < 0x10000) return Uint8Array.of(mt | 25, n >> 8, n & 0xff)
  return Uint8Array.of(mt | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

export const PROTECTED_ES384 = Uint8Array.of(0xa1, 0x01, 0x38, 0x22)

/** RFC 9052 §4.4 Sig_structure, written independently of the library's. */
export function sigStructureOf(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return cbor(['Signature1', protectedHeader, new Uint8Array(0), payload])
}

export function signEs384(key: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign('sha384', data, { key, dsaEncoding: 'ieee-p1363' }))
}

export interface EnvelopeParts {
  protectedHeader?: Uint8Array
  unprotected?: Map<unknown, unknown>
  payload: Uint8Array
  /** signs the Sig_structure when no explicit signature is given */
  signer?: KeyObject
  signature?: Uint8Array
  tagged?: boolean
}

export function envelope(parts: EnvelopeParts): Uint8Array {
  const prot = parts.protectedHeader ?? PROTECTED_ES384
  let signature = parts.signature
  if (signature === undefined) {
    if (parts.signer === undefined) throw new Error('envelope: signature or signer needed')
    signature = signEs384(parts.signer, sigStructureOf(prot, parts.payload))
  }
  const body = cbor([prot, parts.unprotected ?? new Map(), parts.payload, signature])
  return parts.tagged === true ? concat(Uint8Array.of(0xd2), body) : body
}

/** The nine payload fields in the order real NSMs write them. */
export interface PayloadFields {
  module_id: unknown
  digest: unknown
  timestamp: unknown
  pcrs: unknown
  certificate: unknown
  cabundle: unknown
  public_key: unknown
  user_data: unknown
  nonce: unknown
}

export function payloadEntries(f: PayloadFields): [string, unknown][] {
  return [
    ['module_id', f.module_id],
    ['digest', f.digest],
    ['timestamp', f.timestamp],
    ['pcrs', f.pcrs],
    ['certificate', f.certificate],
    ['cabundle', f.cabundle],
    ['public_key', f.public_key],
    ['user_data', f.user_data],
    ['nonce', f.nonce],
  ]
}

export function encodePayload(f: PayloadFields, indefinite = false): Uint8Array {
  return rawMap(payloadEntries(f), indefinite)
}

// ---- DER ----------------------------------------------------------------------------

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n)
  if (n < 0x100) return Uint8Array.of(0x81, n)
  return Uint8Array.of(0x82, n >> 8, n & 0xff)
}

export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(...content)
  return concat(Uint8Array.of(tag), derLength(body.length), body)
}

const seq = (...c: Uint8Array[]): Uint8Array => tlv(0x30, ...c)

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** INTEGER from unsigned magnitude bytes, minimal. */
export function derUnsigned(magnitude: Uint8Array): Uint8Array {
  let i = 0
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++
  const m = magnitude.subarray(i)
  return tlv(0x02, (m[0] ?? 0) & 0x80 ? concat(Uint8Array.of(0), m) : m)
}

function derSmall(n: number): Uint8Array {
  const bytes: number[] = []
  do {
    bytes.unshift(n & 0xff)
    n = Math.floor(n / 256)
  } while (n > 0)
  return derUnsigned(Uint8Array.from(bytes))
}

const ECDSA_SHA384 = seq(tlv(0x06, hexBytes('2a8648ce3d040303')))
const ECDSA_SHA256 = seq(tlv(0x06, hexBytes('2a8648ce3d040302')))
const OID_CN = hexBytes('550403')

/** Name ::= SEQUENCE OF RDN, each with one UTF8String attribute. */
export function nameDer(cn: string, org = 'Forgery Test'): Uint8Array {
  const rdn = (oid: Uint8Array, value: string): Uint8Array => tlv(0x31, seq(tlv(0x06, oid), tlv(0x0c, new TextEncoder().encode(value))))
  return seq(rdn(hexBytes('550406'), 'US'), rdn(hexBytes('55040a'), org), rdn(OID_CN, cn))
}

function derTime(ms: number): Uint8Array {
  const iso = new Date(ms).toISOString() // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '')
  const year = new Date(ms).getUTCFullYear()
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
  return year < 2050 ? tlv(0x17, new TextEncoder().encode(`${digits.slice(2)}Z`)) : tlv(0x18, new TextEncoder().encode(`${digits}Z`))
}

function bitString(bits: number): Uint8Array {
  // KeyUsage: bit 0 = MSB of the first byte; DER drops trailing zero bits (X.690 §11.2.2)
  let highest = -1
  for (let b = 0; b < 16; b++) if (bits & (1 << b)) highest = b
  const nbytes = Math.max(1, Math.floor(highest / 8) + 1)
  const out = new Uint8Array(nbytes)
  for (let b = 0; b <= highest; b++) if (bits & (1 << b)) out[b >> 3]! |= 0x80 >> (b & 7)
  const unused = highest < 0 ? 0 : nbytes * 8 - 1 - highest
  return tlv(0x03, Uint8Array.of(unused), out)
}

export const KU = { digitalSignature: 1 << 0, nonRepudiation: 1 << 1, keyCertSign: 1 << 5, cRLSign: 1 << 6 } as const

export function extension(oidHex: string, critical: boolean, value: Uint8Array): Uint8Array {
  return seq(tlv(0x06, hexBytes(oidHex)), ...(critical ? [tlv(0x01, Uint8Array.of(0xff))] : []), tlv(0x04, value))
}

export interface CertSpec {
  subject: Uint8Array
  issuer: Uint8Array
  serial?: Uint8Array
  notBefore: number
  notAfter: number
  publicKey: KeyObject
  /** the issuer's private key */
  signer: KeyObject
  /** basicConstraints: undefined = omit the extension */
  ca?: boolean
  pathLen?: number
  /** KeyUsage bits (KU); undefined = omit the extension */
  keyUsage?: number
  extraExtensions?: Uint8Array[]
  /** signature algorithm written in the certificate (default ecdsa-with-SHA384) */
  algorithm?: 'es384' | 'es256-label'
  /** rewrite the DER ECDSA-Sig-Value (to test strict parsing) */
  mangleSignature?: (der: Uint8Array) => Uint8Array
}

export function makeCert(spec: CertSpec): Uint8Array {
  const exts: Uint8Array[] = []
  if (spec.ca !== undefined) {
    const fields = [...(spec.ca ? [tlv(0x01, Uint8Array.of(0xff))] : []), ...(spec.pathLen !== undefined ? [derSmall(spec.pathLen)] : [])]
    exts.push(extension('551d13', true, seq(...fields)))
  }
  if (spec.keyUsage !== undefined) exts.push(extension('551d0f', true, bitString(spec.keyUsage)))
  exts.push(...(spec.extraExtensions ?? []))
  const alg = spec.algorithm === 'es256-label' ? ECDSA_SHA256 : ECDSA_SHA384
  const spki = new Uint8Array(spec.publicKey.export({ type: 'spki', format: 'der' }))
  const tbs = seq(
    tlv(0xa0, derSmall(2)),
    derUnsigned(spec.serial ?? Uint8Array.of(1)),
    alg,
    spec.issuer,
    seq(derTime(spec.notBefore), derTime(spec.notAfter)),
    spec.subject,
    spki,
    ...(exts.length > 0 ? [tlv(0xa3, seq(...exts))] : []),
  )
  let sigDer = new Uint8Array(sign('sha384', tbs, spec.signer))
  if (spec.mangleSignature !== undefined) sigDer = new Uint8Array(spec.mangleSignature(sigDer))
  return seq(tbs, alg, tlv(0x03, Uint8Array.of(0), sigDer))
}

export function p384(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-384' })
}

// ---- a simulated Nitro PKI ------------------------------------------------------------

export interface Pki {
  root: Uint8Array
  /** cabundle as an NSM sends it: root first */
  cabundle: Uint8Array[]
  leaf: Uint8Array
  leafKey: KeyObject
  /** private keys, root first, leaf last */
  keys: KeyObject[]
  names: Uint8Array[]
  notBefore: number
  notAfter: number
}

export interface PkiOptions {
  /** validity of every certificate (ms) */
  notBefore: number
  notAfter: number
  rootSubject?: Uint8Array
  rootSerial?: Uint8Array
  /** per-certificate overrides, index 0 = root … 4 = leaf */
  override?: (index: number, spec: CertSpec) => CertSpec
}

/** root → regional → zonal → instance → leaf, shaped like AWS's (pathLen 2, 1, 0). */
export function makePki(opts: PkiOptions): Pki {
  const keys = Array.from({ length: 5 }, () => p384())
  const names = [
    opts.rootSubject ?? nameDer('forged.nitro-enclaves'),
    nameDer('regional.forged'),
    nameDer('zonal.forged'),
    nameDer('i-0forged.forged'),
    nameDer('i-0forged-enc0forged.forged'),
  ]
  const pathLens = [undefined, 2, 1, 0]
  const ders: Uint8Array[] = []
  for (let i = 0; i < 5; i++) {
    const isLeaf = i === 4
    let spec: CertSpec = {
      subject: names[i]!,
      issuer: names[Math.max(0, i - 1)]!,
      serial: i === 0 && opts.rootSerial !== undefined ? opts.rootSerial : Uint8Array.of(0x10 + i),
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      publicKey: keys[i]!.publicKey,
      signer: keys[Math.max(0, i - 1)]!.privateKey,
      ca: !isLeaf,
      keyUsage: isLeaf ? KU.digitalSignature | KU.nonRepudiation : KU.digitalSignature | KU.keyCertSign | KU.cRLSign,
      ...(pathLens[i] !== undefined ? { pathLen: pathLens[i] } : {}),
    }
    if (opts.override !== undefined) spec = opts.override(i, spec)
    ders.push(makeCert(spec))
  }
  return {
    root: ders[0]!,
    cabundle: ders.slice(0, 4),
    leaf: ders[4]!,
    leafKey: keys[4]!.privateKey,
    keys: keys.map((k) => k.privateKey),
    names,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
  }
}

/** The same hex string with its last digit changed: always a different value, never the same by chance. */
export function alterHex(hex: string): string {
  const last = Number.parseInt(hex.slice(-1), 16)
  return hex.slice(0, -1) + (last ^ 1).toString(16)
}

export function zeros(n: number): Uint8Array {
  return new Uint8Array(n)
}

export function filled(n: number, byte: number): Uint8Array {
  return new Uint8Array(n).fill(byte)
}

/** 16 PCRs like a production enclave: 0-4 and 8 set, the rest zero. */
export function productionPcrs(): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>()
  for (let i = 0; i < 16; i++) pcrs.set(i, [0, 1, 2, 3, 4, 8].includes(i) ? filled(48, 0x11 * (i + 1)) : zeros(48))
  return pcrs
}

export interface SimulatedDoc {
  pki: Pki
  fields: PayloadFields
  doc: Uint8Array
}

/** A complete valid document from a simulated PKI: verify it with options.root = pki.root. */
export function simulatedDoc(pki: Pki, overrides: Partial<PayloadFields> = {}, indefinite = false): SimulatedDoc {
  const fields: PayloadFields = {
    module_id: 'i-0forged-enc0forged',
    digest: 'SHA384',
    timestamp: BigInt(pki.notBefore + 1000),
    pcrs: productionPcrs(),
    certificate: pki.leaf,
    cabundle: pki.cabundle,
    public_key: filled(32, 0xab),
    user_data: null,
    nonce: null,
    ...overrides,
  }
  const doc = envelope({ payload: encodePayload(fields, indefinite), signer: pki.leafKey })
  return { pki, fields, doc }
}

/** Seeded xorshift32: reproducible "random" bytes for fuzz loops. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}
