// The one NSM interface the service talks to, whether the Nitro Secure Module is real
// (/dev/nsm through the native addon) or simulated. All methods are async because the
// simulator signs certificates with WebCrypto; the hardware adapter is synchronous inside.
import { CodedError } from '../../nec01/errors.js'

/**
 * Error names of the NSM API (aws-nitro-enclaves-nsm-api src/api/mod.rs, enum ErrorCode,
 * without `Success`). The hardware returns exactly these; the simulator uses them for the
 * same conditions so callers handle one set of codes.
 */
export const NSM_API_ERROR_CODES = [
  'InvalidArgument',
  'InvalidIndex',
  'InvalidResponse',
  'ReadOnlyIndex',
  'InvalidOperation',
  'BufferTooSmall',
  'InputTooLarge',
  'InternalError',
] as const

export type NsmApiErrorCode = (typeof NSM_API_ERROR_CODES)[number]

/**
 * Codes this project adds for conditions the NSM itself never reports:
 * NoDevice — /dev/nsm is missing (not inside an enclave);
 * OpenFailed — /dev/nsm exists but could not be opened;
 * AddonUnavailable — the native addon could not be loaded on this platform;
 * Closed — the handle was used after close();
 * StateError — the simulator could not read or write its PKI state directory, or its CA file is damaged.
 */
export const NSM_LOCAL_ERROR_CODES = ['NoDevice', 'OpenFailed', 'AddonUnavailable', 'Closed', 'StateError'] as const

export type NsmLocalErrorCode = (typeof NSM_LOCAL_ERROR_CODES)[number]

export type NsmErrorCode = NsmApiErrorCode | NsmLocalErrorCode

export class NsmError extends CodedError<NsmErrorCode> {}

export function isNsmError(value: unknown): value is NsmError {
  return value instanceof NsmError
}

export interface NsmVersion {
  major: number
  minor: number
  patch: number
}

export interface NsmDescription {
  moduleId: string
  maxPcrs: number
  /** indices of the locked PCRs, ascending */
  lockedPcrs: number[]
  digest: 'SHA384'
  version: NsmVersion
  /** 'nsm' for the real module, 'simulated' for the simulator: never trust the latter */
  tee: 'nsm' | 'simulated'
  /** PCR0, PCR1 and PCR2 are all zeros: the enclave runs in debug mode */
  debug: boolean
}

export interface PcrDescription {
  locked: boolean
  value: Uint8Array
}

/** Optional fields of an attestation request; absent fields are CBOR null in the document. */
export interface AttestRequest {
  publicKey?: Uint8Array
  userData?: Uint8Array
  nonce?: Uint8Array
}

export interface Nsm {
  describe(): Promise<NsmDescription>
  /** SHA384(old ‖ data); resolves to the new value */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>
  lockPcr(index: number): Promise<void>
  describePcr(index: number): Promise<PcrDescription>
  /** raw COSE_Sign1 bytes, exactly as the module produced them */
  attest(request?: AttestRequest): Promise<Uint8Array>
  random(n: number): Promise<Uint8Array>
  close(): Promise<void>
}
