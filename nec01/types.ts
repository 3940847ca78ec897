// The shapes every verifier entry point returns and accepts. One result shape for
// attestation documents, kind:23793 root events and tee_root carriers, so a client
// renders all three the same way.

/** A Nostr event as it travels on the wire (NIP-01). */
export interface NostrEvent {
  id: string
  pubkey: string
  created_at: number
  kind: number
  tags: string[][]
  content: string
  sig: string
}

/** A NIP-17 rumor: unsigned by design, with its id; the seal around it authenticates it. */
export type Rumor = Omit<NostrEvent, 'sig'>

/** An unsigned event (a template before signing; a rumor's id may be absent). */
export interface UnsignedEvent {
  pubkey?: string
  created_at: number
  kind: number
  tags: string[][]
  content: string
  id?: string
}

/**
 * Stable check ids. `reason` of a failed result is the id of the first failing check.
 * They are part of the public API (docs/verify.md): never rename one.
 */
export const CHECK_IDS = [
  'input', // the input is of a supported type and size
  'cose', // COSE_Sign1 structure, protected header {1:-35}, empty unprotected header
  'payload', // attestation payload per the AWS NSM spec
  'root', // cabundle[0] is byte-identical to the trusted root
  'chain', // certificate path: signatures, names, CA flags, key usage, pathLen
  'time', // every certificate valid at the validation time
  'signature', // ES384 signature of the document by the leaf key
  'debug', // not a debug-mode enclave (PCR0/1/2 all zero)
  'pcrs', // PCRs equal the expected ones
  'pubkey', // public_key equals the expected key (or the event's pubkey)
  'nonce', // nonce equals the expected one
  'user_data', // user_data equals the expected value
  'event', // Nostr event shape, id and Schnorr signature
  'kind', // kind 23793
  't', // the t tag matches the expectation
  'expiration', // expiration tag in the future and not after the leaf's notAfter
  'protected', // the NIP-70 ["-"] tag
  'carrier', // tee_root carrier: pubkey match, created_at inside the validity
  'announcement', // NEC-02 announcement: same pubkey as its attestation, x tags, r, p markers
  'build', // NEC-03 builder signature: self-signed certificate for the signer, PCR8
  'instance', // NEC-04 launcher signature: PCR4
  'release', // NEC-05 release signature: PCR0/1/2, r, t
  'cert', // a tee_cert delegation chain from the root key to the event's key
  'upgrade', // a hand-over event (docs/upgrades.md): its tags, its target's attestation, its cooldown
] as const

export type CheckId = (typeof CHECK_IDS)[number]

export interface Check {
  id: CheckId
  ok: boolean
  detail: string
}

export interface AttestationInfo {
  module_id: string
  /** milliseconds since the epoch, as in the document */
  timestamp: number
  digest: string
  /** index → lowercase hex, every PCR the document carries */
  pcrs: Record<string, string>
  /** lowercase hex or null when the document has none */
  public_key: string | null
  user_data: string | null
  nonce: string | null
  /** leaf certificate validity, unix seconds */
  certificate: { notBefore: number; notAfter: number }
  /** where the whole path root..leaf is valid (latest notBefore, earliest notAfter), unix seconds */
  chain: { notBefore: number; notAfter: number }
  /**
   * When PCR16 is present and public_key is set: whether
   * PCR16 == SHA384(0^48 ‖ SHA256(public_key)). null when either is absent.
   */
  pcr16_binds_public_key: boolean | null
}

/** Who vouches for a service: npubs of the NEC signatures that verified. */
export interface Signers {
  /** NEC-03: who built the image (PCR8) */
  builder: string | null
  /** NEC-04: who runs the EC2 instance (PCR4) */
  launcher: string | null
  /** NEC-05: who approved PCR0/1/2 (embedded in the announcement or passed in `releases`) */
  releasers: string[]
}

/** One kind:23797 certificate of a tee_cert chain: `signer` hands the key on to `delegate`. */
export interface DelegationLink {
  id: string
  signer: string
  delegate: string
  /** unix seconds */
  expiration: number
}

export interface VerifyResult {
  valid: boolean
  /** id of the first failing check; null when valid */
  reason: CheckId | null
  checks: Check[]
  attestation: AttestationInfo | null
  /**
   * the event that holds the attestation: the kind:23793 root event (root events, carriers,
   * announcements), or a legacy kind:63793 announcement itself
   */
  event?: NostrEvent
  /** announcements, and roots verified with release signatures: who built, launched, released */
  signers?: Signers
  /** a carrier signed by a delegated key: the tee_cert chain, root key first */
  delegation?: DelegationLink[]
}

/** bytes may be given as Uint8Array or lowercase/uppercase hex */
export type BytesLike = Uint8Array | string

export type Expect = 'prod' | 'dev' | 'any'

export interface VerifyOptions {
  /** validation time: a Date, or unix seconds. Default: now. */
  now?: Date | number
  /** trusted root certificate, DER bytes or PEM text. Default: the pinned AWS Nitro root G1. */
  root?: Uint8Array | string
  /** expected PCRs, any subset of indices: index → 48-byte value (hex or bytes) */
  expectedPcrs?: Record<number | string, BytesLike>
  /**
   * Accept any PCRs. Without expectedPcrs or anyPcrs the result is invalid (`pcrs`):
   * without trusted PCRs an attestation proves nothing. Debug mode stays rejected.
   */
  anyPcrs?: boolean
  /** expected t tag of a root event; default 'prod' */
  expect?: Expect
  /** expected public_key (32-byte x-only Nostr pubkey for NEC-01) */
  publicKey?: BytesLike
  /** expected nonce */
  nonce?: BytesLike
  /** expected user_data */
  userData?: BytesLike
}

/**
 * Trust in people instead of hashes (NEC-03..05). Each one given is a requirement of its
 * own; releaseSigners or builder also stand in for expectedPcrs (they name the code).
 */
export interface NecTrustOptions {
  /** npubs or hex pubkeys of maintainers whose NEC-05 release signatures are trusted */
  releaseSigners?: string[]
  /** how many distinct releaseSigners must have signed exactly these PCR0/1/2; default 1 */
  releaseThreshold?: number
  /** release signature events found elsewhere (relays, files), besides those an announcement carries */
  releases?: NostrEvent[]
  /** npub or hex of the trusted builder: PCR8 must come from their NEC-03 build certificate */
  builder?: string
  /** npub or hex of the trusted launcher: PCR4 must be signed by them (NEC-04) */
  launcher?: string
  /** expected repository URL (the `r` tag of announcements and release signatures) */
  repo?: string
}

/** Options of root events, announcements and NEC signature events. */
export interface NecVerifyOptions extends VerifyOptions, NecTrustOptions {}

export interface TeeRootOptions extends NecVerifyOptions {
  /**
   * For a NIP-17 rumor (kind 14, unsigned): the pubkey that signed the seal the rumor
   * came in, verified by the caller while unwrapping. The rumor's pubkey must equal it
   * and the root's pubkey instead of carrying a signature.
   */
  sealSigner?: string
}
