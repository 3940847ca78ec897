// nec01: verify AWS Nitro Enclave attestations for Nostr (NEC-01) and build the events
// that carry them. Browser-safe: Web APIs only.
export { verifyAttestation, decodeAttestation, clearVerifierCaches } from './attestation.js'
export { AWS_NITRO_ROOT_G1_DER, AWS_NITRO_ROOT_G1_SHA256 } from './aws-root.js'
export {
  ROOT_KIND,
  TEE_ROOT_TAG,
  buildRootEvent,
  withTeeRoot,
  verifyRootEvent,
  verifyTeeRoot,
  clearTeeRootMemo,
  teeRootMemoStats,
  type RootEventParams,
} from './event.js'
export { CHECK_IDS } from './types.js'
export type {
  AttestationInfo,
  BytesLike,
  Check,
  CheckId,
  Expect,
  NostrEvent,
  Rumor,
  TeeRootOptions,
  UnsignedEvent,
  VerifyOptions,
  VerifyResult,
} from './types.js'
