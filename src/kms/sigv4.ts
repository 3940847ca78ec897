// The stand-in reads a request's Signature Version 4 header the way AWS does before it checks
// the signature: an unsigned request or a malformed header is refused with AWS's error, and the
// credential scope must name this region and the kms service. The HMAC itself is not checked:
// the stand-in holds no secret keys, and what it guards is the attestation, not the caller.
import type { IncomingHttpHeaders } from 'node:http'

export interface SigV4Credential {
  accessKeyId: string
  /** YYYYMMDD of the scope */
  date: string
  region: string
  service: string
  signedHeaders: string[]
}

export type SigV4Problem =
  | { type: 'MissingAuthenticationTokenException'; status: 403; message: string }
  | { type: 'IncompleteSignatureException'; status: 400; message: string }
  | { type: 'InvalidSignatureException'; status: 400; message: string }

const ALGORITHM = 'AWS4-HMAC-SHA256'
const HEADER = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/** The caller's credential scope, or the error AWS answers with. */
export function readSigV4(headers: IncomingHttpHeaders, region: string): SigV4Credential | SigV4Problem {
  const auth = single(headers.authorization)
  if (auth === undefined || auth === '') return { type: 'MissingAuthenticationTokenException', status: 403, message: 'Missing Authentication Token' }
  const incomplete = (why: string): SigV4Problem => ({ type: 'IncompleteSignatureException', status: 400, message: why })
  if (!auth.startsWith(`${ALGORITHM} `)) return incomplete(`Authorization header requires the ${ALGORITHM} algorithm`)
  const m = HEADER.exec(auth)
  if (m === null) return incomplete("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters")
  const scope = m[1]!.split('/')
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || !/^\d{8}$/.test(scope[1]!)) return incomplete('Credential scope is malformed')
  const [accessKeyId, date, scopeRegion, service] = scope as [string, string, string, string]
  const signedHeaders = m[2]!.split(';')
  const amzDate = single(headers['x-amz-date'])
  if (amzDate === undefined || !signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
    return incomplete('host and x-amz-date must be present and signed')
  }
  if (!amzDate.startsWith(date)) return { type: 'InvalidSignatureException', status: 400, message: 'Date in Credential scope does not match X-Amz-Date' }
  if (service !== 'kms') return { type: 'InvalidSignatureException', status: 400, message: `Credential should be scoped to correct service: 'kms'` }
  if (scopeRegion !== region) return { type: 'InvalidSignatureException', status: 400, message: `Credential should be scoped to a valid region, not '${scopeRegion}'` }
  return { accessKeyId, date, region: scopeRegion, service, signedHeaders }
}
