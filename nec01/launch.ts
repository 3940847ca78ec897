// NEC-04 launcher signatures (kind 23795, legacy 63796): the owner of the EC2 instance
// signs PCR4 = SHA384(0^48 ‖ instance id). PCR4 names the host, not the code: a launcher
// says who runs the enclave, never what it runs.
import type { EventTemplate } from 'nostr-tools/pure'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { bytesEqual } from './encoding.js'
import { LAUNCHER_KIND } from './kinds.js'
import { npub, tagValues } from './nostr.js'
import { pcr4OfInstance, PCR_HEX } from './pcr.js'
import { contextPcr, shortHex, signedProblem, verdict, type SignatureContext, type SignatureVerdict } from './signature.js'
import type { NostrEvent } from './types.js'

/** Verifies a launcher signature against the context's PCR4 (attested or expected). */
export function checkLaunchSignature(event: NostrEvent, ctx: SignatureContext): SignatureVerdict {
  const problem = signedProblem(event, LAUNCHER_KIND, ctx.nowSec)
  if (problem !== null) return verdict(event, false, problem)
  const values = tagValues(event, 'PCR4')
  const pcr4 = values[0]
  if (values.length !== 1 || pcr4 === undefined || !PCR_HEX.test(pcr4)) return verdict(event, false, `expected exactly one PCR4 tag of 96 lowercase hex characters, found ${values.length}`)
  const expected = contextPcr(ctx, 4)
  if (typeof expected === 'string') return verdict(event, false, expected)
  if (expected !== null && !bytesEqual(expected, hexToBytes(pcr4))) {
    return verdict(event, false, `its PCR4 ${shortHex(pcr4)} is not the ${ctx.pcrSource} PCR4 ${shortHex(expected)}`)
  }
  const match = expected === null ? `PCR4 ${shortHex(pcr4)}` : `PCR4 ${shortHex(pcr4)} equals the ${ctx.pcrSource} PCR4`
  return verdict(event, true, `launched by ${npub(event.pubkey)}: ${match}`)
}

export type LaunchSignatureParams = ({ instanceId: string } | { pcr4: string }) & { content?: string; created_at?: number }

/** The unsigned kind:23795 template for an EC2 instance id (or its PCR4); the launcher signs it. */
export function buildLauncherSignature(params: LaunchSignatureParams): EventTemplate {
  let pcr4: string
  if ('instanceId' in params) {
    if (!/^i-[0-9a-f]{8,17}$/.test(params.instanceId)) throw new TypeError(`not an EC2 instance id: ${params.instanceId}`)
    pcr4 = bytesToHex(pcr4OfInstance(params.instanceId))
  } else {
    pcr4 = params.pcr4.toLowerCase()
    if (!PCR_HEX.test(pcr4)) throw new TypeError('pcr4 must be 96 hex characters')
  }
  return {
    kind: LAUNCHER_KIND,
    created_at: params.created_at ?? Math.floor(Date.now() / 1000),
    content: params.content ?? '',
    tags: [['-'], ['PCR4', pcr4]],
  }
}
