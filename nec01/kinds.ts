// Every Nostr kind the NEC family (nostrband/necs) and this project use, in one place, so
// no two constants can ever name the same number. Legacy kinds are what services published
// before the NECs settled; the verifier reads each as its successor.

/** NEC-01 attestation ("root") event: ephemeral, never published on its own. */
export const ROOT_KIND = 23793
/** NEC-02 service announcement (replaceable). */
export const ANNOUNCEMENT_KIND = 13793
/** NEC-02 announcement before the tee_root tag: its `content` is the base64 attestation. */
export const LEGACY_ANNOUNCEMENT_KIND = 63793
/** NEC-03 builder signature: a self-signed P-384 certificate whose hash is PCR8. */
export const BUILD_KIND = 23794
export const LEGACY_BUILD_KIND = 63795
/** NEC-04 launcher (instance) signature: PCR4, the EC2 instance id's hash. */
export const LAUNCHER_KIND = 23795
export const LEGACY_LAUNCHER_KIND = 63796
/** NEC-05 release signature: maintainers approve PCR0/1/2 of a release. */
export const RELEASE_KIND = 63794
export const LEGACY_RELEASE_KIND = 63792
/**
 * Upgrades that keep the npub (docs/upgrades.md): the holder's public record of a hand-over,
 * each a tee_root carrier signed by the npub itself. Regular kinds (relays keep every one),
 * next to the NEC block's published kinds 63793..63796 and clear of every kind the NIPs list.
 */
export const UPGRADE_PENDING_KIND = 63797
export const UPGRADE_CANCELLED_KIND = 63798
export const UPGRADED_KIND = 63799
/** enclaved's delegation certificate: a key names the next key in its `p` tag (tee_cert chains). */
export const CERT_KIND = 23797
/**
 * Our JSON-RPC transport (docs/protocol.md). Ephemeral (NIP-01 20000..29999) so relays
 * never store calls, and outside the NEC block 23793..23797 and every kind the NIPs list
 * (NIP-46 24133, NIP-47 23194/23195, NIP-42 22242) or nostrband's services use
 * (24135, 29425, 29525).
 */
export const RPC_KIND = 21793

/** The current kind a legacy kind is read as; a current kind maps to itself. */
export function successorKind(kind: number): number {
  switch (kind) {
    case LEGACY_ANNOUNCEMENT_KIND:
      return ANNOUNCEMENT_KIND
    case LEGACY_BUILD_KIND:
      return BUILD_KIND
    case LEGACY_LAUNCHER_KIND:
      return LAUNCHER_KIND
    case LEGACY_RELEASE_KIND:
      return RELEASE_KIND
    default:
      return kind
  }
}
