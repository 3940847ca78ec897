// The people of the NEC family, for tests: a builder with a real builder certificate, a
// launcher, a maintainer, each with a key of their own, and the signature events they make
// with nec01's builders (nothing hand-rolled that could agree with a bug).
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { npubEncode } from 'nostr-tools/nip19'
import { buildBuilderSignature } from '../nec01/build.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { buildLauncherSignature } from '../nec01/launch.js'
import { pcr4OfInstance, pcr8OfCertificate } from '../nec01/pcr.js'
import { buildReleaseSignature } from '../nec01/release.js'
import type { NostrEvent } from '../nec01/types.js'
import { makeBuilderCertificate, type BuilderCertificate } from '../src/cli/builder-cert.js'

export const INSTANCE_ID = 'i-0123456789abcdef0'
export const OTHER_INSTANCE_ID = 'i-0fedcba9876543210'
export const REPO = 'https://example.org/nec01-test.git'

export interface Person {
  sk: Uint8Array
  pubkey: string
  npub: string
}

export function person(): Person {
  const sk = generateSecretKey()
  const pubkey = getPublicKey(sk)
  return { sk, pubkey, npub: npubEncode(pubkey) }
}

export interface Builder extends Person {
  cert: BuilderCertificate
  pcr8: string
}

export async function builder(): Promise<Builder> {
  const p = person()
  const cert = await makeBuilderCertificate(p.pubkey)
  return { ...p, cert, pcr8: bytesToHex(pcr8OfCertificate(cert.der)) }
}

export function buildSignature(b: Builder, t: 'prod' | 'dev', r: string = REPO): NostrEvent {
  return finalizeEvent(buildBuilderSignature({ certificate: b.cert.der, t, r }), b.sk)
}

export function launchSignature(p: Person, instanceId: string = INSTANCE_ID): NostrEvent {
  return finalizeEvent(buildLauncherSignature({ instanceId }), p.sk)
}

export function releaseSignature(p: Person, pcrs: { 0: string; 1: string; 2: string }, t: 'prod' | 'dev', r: string = REPO): NostrEvent {
  return finalizeEvent(buildReleaseSignature({ pcrs, r, t }), p.sk)
}

export function pcr4Hex(instanceId: string = INSTANCE_ID): string {
  return bytesToHex(pcr4OfInstance(instanceId))
}
