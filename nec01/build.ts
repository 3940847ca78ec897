// NEC-03 builder signatures (kind 23794, legacy 63795): a builder signs the enclave image
// with a throw-away P-384 key whose self-signed certificate names their npub (CN, or OU
// in early builds; O=Nostr). The image's PCR8 is SHA384(0^48 ‖ SHA384(certificate DER)),
// so a matching PCR8 proves the image was signed with that certificate's key; the Nostr
// signature over the certificate says who made it.
import type { EventTemplate } from 'nostr-tools/pure'
import { derToPem, parseCertificate, subjectValues, type Certificate } from './cert.js'
import { importP384, verifyEs384 } from './chain.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { base64ToBytes, bytesEqual } from './encoding.js'
import { BUILD_KIND } from './kinds.js'
import { iso, npub, tagValues } from './nostr.js'
import { pcr8OfCertificate } from './pcr.js'
import { contextPcr, shortHex, signedProblem, tagProblem, verdict, type SignatureContext, type SignatureVerdict } from './signature.js'
import type { NostrEvent } from './types.js'

/** A P-384 certificate is well under 2 KiB; longer text is not decoded. */
const MAX_CERT_TEXT = 8 * 1024
const PEM_HEADER = /-----(BEGIN|END) CERTIFICATE-----/g

/** The `cert` tag: PEM (NEC-03) or bare base64 DER (early builds) → DER, or a reason. */
function certificateDer(text: string): Uint8Array | string {
  if (text.length > MAX_CERT_TEXT) return `cert tag is ${text.length} characters, more than ${MAX_CERT_TEXT}`
  try {
    return base64ToBytes(text.replace(PEM_HEADER, '').replace(/\s+/g, ''))
  } catch {
    return 'cert tag is neither PEM nor base64'
  }
}

async function selfSigned(cert: Certificate): Promise<boolean> {
  if (!bytesEqual(cert.issuer, cert.subject)) return false
  try {
    return await verifyEs384(await importP384(cert.publicKey), cert.signature, cert.tbs)
  } catch {
    return false
  }
}

/** Subject names the signer: O=Nostr and CN (or OU, early builds) = their npub; a reason when not. */
function subjectProblem(cert: Certificate, signer: string): string | null {
  let o: string[], cn: string[], ou: string[]
  try {
    o = subjectValues(cert, 'O')
    cn = subjectValues(cert, 'CN')
    ou = subjectValues(cert, 'OU')
  } catch {
    return 'certificate subject is malformed'
  }
  if (o.length !== 1 || o[0] !== 'Nostr') return `certificate subject O is ${JSON.stringify(o)}, expected "Nostr"`
  if (!cn.includes(signer) && !ou.includes(signer)) return `certificate is for CN=${JSON.stringify(cn)} OU=${JSON.stringify(ou)}, not the signer ${signer}`
  return null
}

export interface BuildVerdict extends SignatureVerdict {
  /** PCR8 the certificate yields (hex); null when the certificate did not parse */
  pcr8: string | null
}

/** Everything about the certificate; returns its PCR8 or a reason. */
async function certificateProblem(event: NostrEvent, nowSec: number): Promise<{ pcr8: Uint8Array; label: string } | string> {
  const certs = tagValues(event, 'cert')
  if (certs.length !== 1) return `expected exactly one cert tag, found ${certs.length}`
  const der = certificateDer(certs[0]!)
  if (typeof der === 'string') return der
  let cert: Certificate
  try {
    cert = parseCertificate(der, { allowV1: true })
  } catch (err) {
    // another curve or algorithm ends here: the profile is P-384 with ecdsa-with-SHA384
    return `certificate: ${err instanceof Error ? err.message : 'unparseable'}`
  }
  if (!(await selfSigned(cert))) return 'certificate is not self-signed (issuer ≠ subject, or its signature does not verify with its own key)'
  const subject = subjectProblem(cert, npub(event.pubkey))
  if (subject !== null) return subject
  const nowMs = nowSec * 1000
  if (nowMs < cert.notBefore || nowMs > cert.notAfter) {
    return `certificate valid ${iso(cert.notBefore / 1000)} .. ${iso(cert.notAfter / 1000)}, not at ${iso(nowSec)}`
  }
  return { pcr8: pcr8OfCertificate(der), label: `self-signed P-384 certificate for the signer (O=Nostr), valid until ${iso(cert.notAfter / 1000)}` }
}

/** Verifies a builder signature against the context's PCR8 (attested or expected). */
export async function checkBuildSignature(event: NostrEvent, ctx: SignatureContext): Promise<BuildVerdict> {
  const problem = signedProblem(event, BUILD_KIND, ctx.nowSec) ?? tagProblem(event, 'r', ctx.r, false) ?? tagProblem(event, 't', ctx.t, false)
  if (problem !== null) return { ...verdict(event, false, problem), pcr8: null }
  const cert = await certificateProblem(event, ctx.nowSec)
  if (typeof cert === 'string') return { ...verdict(event, false, cert), pcr8: null }
  const pcr8 = bytesToHex(cert.pcr8)
  const claimed = tagValues(event, 'PCR8')
  if (claimed.length > 1 || (claimed.length === 1 && claimed[0] !== pcr8)) {
    return { ...verdict(event, false, `its PCR8 tag ${shortHex(claimed.join(','))} is not the certificate's ${shortHex(pcr8)}`), pcr8 }
  }
  const expected = contextPcr(ctx, 8)
  if (typeof expected === 'string') return { ...verdict(event, false, expected), pcr8 }
  if (expected !== null && !bytesEqual(expected, cert.pcr8)) {
    return { ...verdict(event, false, `PCR8 of its certificate ${shortHex(pcr8)} is not the ${ctx.pcrSource} PCR8 ${shortHex(expected)}`), pcr8 }
  }
  const match = expected === null ? `PCR8 ${shortHex(pcr8)}` : `PCR8 ${shortHex(pcr8)} equals the ${ctx.pcrSource} PCR8`
  return { ...verdict(event, true, `built by ${npub(event.pubkey)}: ${cert.label}; ${match}`), pcr8 }
}

export interface BuildSignatureParams {
  /** the build certificate: DER bytes or PEM text */
  certificate: Uint8Array | string
  t: 'prod' | 'dev'
  /** repository URL */
  r?: string
  /** package version */
  v?: string
  content?: string
  created_at?: number
}

/** The unsigned kind:23794 template; the builder signs it. Carries PCR8 for discovery. */
export function buildBuilderSignature(params: BuildSignatureParams): EventTemplate {
  const der = typeof params.certificate === 'string' ? certificateDer(params.certificate) : params.certificate
  if (typeof der === 'string') throw new TypeError(der)
  parseCertificate(der, { allowV1: true }) // throws on anything NEC-03 verifiers would reject
  const pcr8 = bytesToHex(pcr8OfCertificate(der))
  const tags: string[][] = [['-']]
  if (params.r !== undefined) tags.push(['r', params.r])
  if (params.v !== undefined) tags.push(['v', params.v])
  tags.push(['t', params.t], ['cert', derToPem(der)], ['PCR8', pcr8])
  return { kind: BUILD_KIND, created_at: params.created_at ?? Math.floor(Date.now() / 1000), content: params.content ?? '', tags }
}
