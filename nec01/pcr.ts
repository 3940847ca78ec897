// PCR arithmetic. A Nitro PCR starts at 48 zero bytes and each extend hashes the old value
// with the data (aws-nitro-enclaves-cli issue 446), so a PCR extended once is
// SHA384(0^48 ‖ data): PCR4 from the instance id, PCR8 from the signing certificate's hash,
// PCR16 from our key.
import { sha384 } from '@noble/hashes/sha2.js'
import { PCR_BYTES } from './payload.js'

/** SHA384(0^48 ‖ data): a PCR extended once from its zero state. */
export function pcrOnce(data: Uint8Array): Uint8Array {
  const input = new Uint8Array(PCR_BYTES + data.length)
  input.set(data, PCR_BYTES)
  return sha384(input)
}

/** NEC-03: PCR8 of an image signed with this certificate = SHA384(0^48 ‖ SHA384(DER)). */
export function pcr8OfCertificate(der: Uint8Array): Uint8Array {
  return pcrOnce(sha384(der))
}

/** NEC-04: PCR4 of an enclave on this EC2 instance = SHA384(0^48 ‖ instance id). */
export function pcr4OfInstance(instanceId: string): Uint8Array {
  return pcrOnce(new TextEncoder().encode(instanceId))
}

/** 96 lowercase hex characters: the form PCRs take in tags. */
export const PCR_HEX = /^[0-9a-f]{96}$/
