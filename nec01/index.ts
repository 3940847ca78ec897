// nec01: verify AWS Nitro Enclave attestations for Nostr (NEC-01) and build the events
// that carry them. Browser-safe: Web APIs only.
export { verifyAttestation, decodeAttestation, clearVerifierCaches } from './attestation.js'
export { AWS_NITRO_ROOT_G1_DER, AWS_NITRO_ROOT_G1_SHA256 } from './aws-root.js'
export * from './kinds.js'
export {
  TEE_ROOT_TAG,
  buildRootEvent,
  withTeeRoot,
  verifyRootEvent,
  verifyTeeRoot,
  clearTeeRootMemo,
  teeRootMemoStats,
  type RootEventParams,
} from './event.js'
export { verifyAnnouncement, buildAnnouncement, type AnnouncementParams } from './announcement.js'
export { buildBuilderSignature, type BuildSignatureParams } from './build.js'
export { buildLauncherSignature, type LaunchSignatureParams } from './launch.js'
export { buildReleaseSignature, type ReleaseSignatureParams } from './release.js'
export { verifyNecSignature, verifyNecEvent } from './necs.js'
export {
  LINEAGE_TAG,
  PENDING_LAPSE_SEC,
  TARGET_ROOT_TAG,
  buildUpgradeCancelled,
  buildUpgradePending,
  buildUpgraded,
  lineageOf,
  verifyUpgradeEvent,
  type CodePcrs,
  type LineageEntry,
  type UpgradeRecord,
  type UpgradeResult,
  type UpgradeVerifyOptions,
} from './upgrade.js'
export { historyLines, verifyHistory, type BuildRecord, type History, type HistoryInput, type PendingRecord } from './lineage.js'
export { TEE_CERT_TAG } from './delegation.js'
export { pcr4OfInstance, pcr8OfCertificate } from './pcr.js'
export { CHECK_IDS } from './types.js'
export type {
  AttestationInfo,
  BytesLike,
  Check,
  CheckId,
  DelegationLink,
  Expect,
  NecTrustOptions,
  NecVerifyOptions,
  NostrEvent,
  Rumor,
  Signers,
  TeeRootOptions,
  UnsignedEvent,
  VerifyOptions,
  VerifyResult,
} from './types.js'
