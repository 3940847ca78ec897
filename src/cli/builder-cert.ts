// A NEC-03 builder certificate: a fresh P-384 key and a self-signed certificate naming a
// builder's npub (CN=npub, O=Nostr), which nitro-cli signs the enclave image with. PCR8 of
// the image is then SHA384(0^48 ‖ SHA384(certificate DER)), and the builder's Nostr
// signature over the certificate (kind 23794) says who built it.
// @peculiar/x509 registers its classes with tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto'
import { npubEncode } from 'nostr-tools/nip19'

x509.cryptoProvider.set(webcrypto)

const EC_PARAMS: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-384' }
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-384' }
/** NEC-03's example: `openssl x509 -req -days 2000`. */
export const DEFAULT_CERT_DAYS = 2000
const DAY_MS = 86_400_000

export interface BuilderCertificate {
  der: Uint8Array
  /** the certificate, PEM */
  certPem: string
  /** the private key, PEM (SEC1 "EC PRIVATE KEY", as `openssl ecparam -genkey` writes it) */
  keyPem: string
  notAfter: Date
}

/** A self-signed certificate for `pubkey` (hex), valid from now for `days`. */
export async function makeBuilderCertificate(pubkey: string, days = DEFAULT_CERT_DAYS, now = Date.now()): Promise<BuilderCertificate> {
  const keys = (await webcrypto.subtle.generateKey(EC_PARAMS, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const notBefore = new Date(Math.floor(now / 1000) * 1000)
  const notAfter = new Date(notBefore.getTime() + days * DAY_MS)
  const serial = new Uint8Array(randomBytes(16))
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01 // positive, full length
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(serial).toString('hex'),
    name: [{ CN: [npubEncode(pubkey)] }, { O: ['Nostr'] }],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'sec1', format: 'pem' }).toString()
  return { der: new Uint8Array(cert.rawData), certPem: cert.toString('pem') + '\n', keyPem, notAfter }
}
