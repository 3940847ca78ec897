// The errors the stand-in answers with, in AWS's JSON 1.1 shape: HTTP status plus
// {"__type": <exception name>, "message": …}. KMS answers its own exceptions with 400 (500
// for its internal failure); the SDK turns __type into the error's name.
import { CodedError } from '../../nec01/errors.js'

export type KmsFaultType =
  | 'AccessDeniedException'
  | 'DisabledException'
  | 'IncompleteSignatureException'
  | 'IncorrectKeyException'
  | 'InvalidCiphertextException'
  | 'InvalidKeyUsageException'
  | 'InvalidSignatureException'
  | 'KMSInternalException'
  | 'MalformedPolicyDocumentException'
  | 'MissingAuthenticationTokenException'
  | 'NotFoundException'
  | 'SerializationException'
  | 'UnknownOperationException'
  | 'UnrecognizedClientException'
  | 'UnsupportedOperationException'
  | 'ValidationException'

/** `code` and `name`: the AWS exception type, as the SDK names the error it makes of it. */
export class KmsFault extends CodedError<KmsFaultType> {
  readonly status: number
  constructor(type: KmsFaultType, message: string, status = type === 'KMSInternalException' ? 500 : 400) {
    super(type, message)
    this.name = type
    this.status = status
  }
}

export function faultBody(fault: KmsFault): string {
  return JSON.stringify({ __type: fault.code, message: fault.message })
}

/** KMS's wording for a failed parameter constraint. */
export function validation(member: string, constraint: string): KmsFault {
  return new KmsFault('ValidationException', `1 validation error detected: Value at '${member}' failed to satisfy constraint: ${constraint}`)
}
