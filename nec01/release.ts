// NEC-05 release signatures (kind 63794, legacy 63792): a maintainer approves the image
// with exactly these PCR0, PCR1 and PCR2, from this repository (r), for prod or dev (t).
import type { EventTemplate } from 'nostr-tools/pure'
import { hexToBytes } from '@noble/hashes/utils.js'
import { bytesEqual } from './encoding.js'
import { RELEASE_KIND } from './kinds.js'
import { npub } from './nostr.js'
import { PCR_HEX } from './pcr.js'
import { contextPcr, shortHex, signedProblem, tagProblem, verdict, type SignatureContext, type SignatureVerdict } from './signature.js'
import type { NostrEvent } from './types.js'

const CODE_PCRS = [0, 1, 2] as const
/** NEC-05: a release without a t tag is for dev. */
const DEFAULT_T = 'dev'

/** The value of ["x", <hex>, "PCR<n>"]: exactly one, 96 lowercase hex; a reason otherwise. */
function xPcr(event: NostrEvent, index: number): string | { reason: string } {
  const values = event.tags.filter((t) => t[0] === 'x' && t[2] === `PCR${index}`).map((t) => t[1])
  const value = values[0]
  if (values.length !== 1 || value === undefined || !PCR_HEX.test(value)) return { reason: `expected exactly one ["x", <96 hex>, "PCR${index}"] tag, found ${values.length}` }
  return value
}

/** Verifies a release signature: PCR0/1/2 against the context's, and its r and t. */
export function checkReleaseSignature(event: NostrEvent, ctx: SignatureContext): SignatureVerdict {
  const problem = signedProblem(event, RELEASE_KIND, ctx.nowSec) ?? tagProblem(event, 'r', ctx.r, true) ?? tagProblem(event, 't', ctx.t, true, DEFAULT_T)
  if (problem !== null) return verdict(event, false, problem)
  for (const index of CODE_PCRS) {
    const signed = xPcr(event, index)
    if (typeof signed !== 'string') return verdict(event, false, signed.reason)
    const expected = contextPcr(ctx, index)
    if (typeof expected === 'string') return verdict(event, false, expected)
    if (expected !== null && !bytesEqual(expected, hexToBytes(signed))) {
      return verdict(event, false, `its PCR${index} ${shortHex(signed)} is not the ${ctx.pcrSource} PCR${index} ${shortHex(expected)}`)
    }
  }
  const scope = [ctx.r === null ? null : `r ${ctx.r}`, ctx.t === null ? null : `t ${ctx.t}`].filter((s) => s !== null)
  const what = ctx.pcrs === null ? 'PCR0/1/2' : `PCR0/1/2 equal to the ${ctx.pcrSource} ones`
  return verdict(event, true, `released by ${npub(event.pubkey)}: ${what}${scope.length > 0 ? `, ${scope.join(', ')}` : ''}`)
}

export interface ReleaseSignatureParams {
  /** PCR0, PCR1, PCR2 as hex (nitro-cli build-enclave's Measurements) */
  pcrs: { 0: string; 1: string; 2: string }
  r: string
  t: 'prod' | 'dev'
  content?: string
  created_at?: number
}

/** The unsigned kind:63794 template; a maintainer signs it and may publish it. */
export function buildReleaseSignature(params: ReleaseSignatureParams): EventTemplate {
  const tags: string[][] = [['r', params.r], ['t', params.t]]
  for (const index of CODE_PCRS) {
    const hex = params.pcrs[index].toLowerCase()
    if (!PCR_HEX.test(hex)) throw new TypeError(`PCR${index} must be 96 hex characters`)
    tags.push(['x', hex, `PCR${index}`])
  }
  return { kind: RELEASE_KIND, created_at: params.created_at ?? Math.floor(Date.now() / 1000), content: params.content ?? '', tags }
}
