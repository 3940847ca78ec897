// The errors the stand-in answers with, in AWS's JSON 1.1 shape: HTTP status plus
// {"__type": <exception name>, "message": …}. KMS answers its own exceptions with 400 (500
// for its internal failure); the SDK turns __type into the error's name.

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

export class KmsFault extends Error {
  readonly type: KmsFaultType
  readonly status: number
  constructor(type: KmsFaultType, message: string, status = type === 'KMSInternalException' ? 500 : 400) {
    super(message)
    this.name = type
    this.type = type
    this.status = status
  }
}

export function faultBody(fault: KmsFault): string {
  return JSON.stringify({ __type: fault.type, message: fault.message })
}

/** KMS's wording for a failed parameter constraint. */
export function validation(member: string, constraint: string): KmsFault {
  return new KmsFault('ValidationException', `1 validation error detected: Value at '${member}' failed to satisfy constraint: ${constraint}`)
}
