// nec01 attest: ask a service for a fresh attestation bound to our nonce (and optional
// custom data), then verify the document end to end. A live, replay-proof proof instead of
// trusting a root event that may be hours old.
import { randomBytes } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { canonicalJson } from '../../nec01/canonical.js'
import { verifyRootEvent } from '../../nec01/event.js'
import { parseRpcResponse, RPC_KIND } from '../../nec01/rpc.js'
import type { Check, VerifyResult } from '../../nec01/types.js'
import { RECENT_WINDOW_SEC } from '../../nec01/windows.js'
import { clientIdentity, clientRelays, noReply, openSession, parsePubkey, parseTimeout, sendRequest } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { formatResult } from '../cli/format.js'
import { hintsFor } from '../cli/hints.js'
import { checkPow, choosePow, mineRequest, parsePowFlag, POW_USAGE, powHint } from '../cli/pow.js'
import { TRUST_ARG_OPTIONS, TRUST_USAGE, trustOptions } from '../cli/trust.js'
import { errorText } from '../../nec01/errors.js'

export const USAGE = `usage: nec01 attest <npub|hex> [--nonce HEX] [--data JSON] [--relay URL]... [--timeout S] [--pow N] [--json] [trust options]

Asks the service (JSON-RPC over Nostr) for a fresh attestation with your nonce and, with
--data, user_data = SHA-256 of the canonical JSON of the data; then checks the nonce,
public_key == the service pubkey, user_data, and the full verification.

  --nonce HEX        nonce to bind (default: 32 random bytes)
  --data JSON        custom data to bind through user_data
  --relay URL        relay to use; repeatable (default: relays.json)
  --relays FILE      relay list file
  --timeout S        seconds to wait for the reply (default 30)
  --sec KEY          call as this key (nsec or hex); prefer NEC01_SECRET
${POW_USAGE}
  --json             print { result, verification } as JSON
${TRUST_USAGE}

exit: 0 verified, 1 invalid or no reply in time, 2 usage`

interface AttestResult {
  event?: unknown
  nonce?: unknown
  custom_digest?: unknown
  custom?: unknown
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('attest', USAGE, args, {
    ...TRUST_ARG_OPTIONS,
    data: { type: 'string' },
    relay: { type: 'string', multiple: true },
    relays: { type: 'string' },
    timeout: { type: 'string' },
    sec: { type: 'string' },
    pow: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new CliError('expected exactly one <npub|hex> (see nec01 attest --help)')
  const service = parsePubkey(positionals[0] ?? '')
  const timeoutSec = parseTimeout(values.timeout)
  const powFlag = parsePowFlag(values.pow)
  const nonce = values.nonce ?? randomBytes(32).toString('hex')
  const { options, warnings } = trustOptions({ ...values, nonce })
  let data: unknown
  let digest: string | undefined
  if (values.data !== undefined) {
    try {
      data = JSON.parse(values.data)
    } catch {
      throw new CliError('--data: not valid JSON')
    }
    try {
      digest = bytesToHex(sha256(utf8ToBytes(canonicalJson(data))))
    } catch (err) {
      // valid JSON with no canonical form (a lone surrogate), or nested too deep
      throw new CliError(`--data: ${errorText(err)}`)
    }
  }

  const { identity } = clientIdentity(values.sec ?? process.env.NEC01_SECRET)
  const relays = clientRelays(values.relay, values.relays)
  for (const w of warnings) console.error(w)
  const session = openSession(identity, relays)
  try {
    const pow = await choosePow(session, service, powFlag, timeoutSec)
    const requestId = bytesToHex(randomBytes(16))
    const body = JSON.stringify({ id: requestId, method: 'attest', params: { nonce, ...(data === undefined ? {} : { data }) } })
    const template = await mineRequest({ kind: RPC_KIND, created_at: Math.floor(Date.now() / 1000), content: identity.nip44Encrypt(service, body), tags: [['p', service]] }, identity.pubkey, pow.bits)
    const request = checkPow(identity.sign(template), pow.bits)
    const now = request.created_at
    const waiting = session.waitFor(
      { kinds: [RPC_KIND], authors: [service], '#p': [identity.pubkey], since: now - RECENT_WINDOW_SEC },
      (e) => e.tags.some((t) => t[0] === 'e' && t[1] === request.id),
      timeoutSec * 1000,
    )
    await sendRequest(session, request, timeoutSec * 1000)
    const replyEvent = await waiting
    if (replyEvent === null) throw noReply(timeoutSec, powHint(pow))
    const response = parseRpcResponse(identity.nip44Decrypt(service, replyEvent.content))
    if (response === null || response.id !== requestId) throw new CliError('the service sent a malformed JSON-RPC response', EXIT_INVALID)
    if ('error' in response) throw new CliError(`the service refused: ${response.error.code}: ${response.error.message}`, EXIT_INVALID)
    const result = response.result as AttestResult

    // Our own checks first: what we asked for must be what came back.
    const extra: Check[] = []
    if (digest !== undefined) {
      const same = result.custom_digest === digest
      extra.push({ id: 'user_data', ok: same, detail: same ? 'custom_digest is SHA-256 of the canonical JSON we sent' : `custom_digest ${String(result.custom_digest)} is not ${digest}` })
    }
    const verification: VerifyResult = await verifyRootEvent(result.event, {
      ...options,
      publicKey: service,
      ...(digest === undefined ? {} : { userData: digest }),
    })
    const checks = [...verification.checks, ...extra]
    const failed = checks.find((c) => !c.ok)
    const final: VerifyResult = { ...verification, checks, valid: failed === undefined, reason: failed?.id ?? null }
    if (values.json === true) console.log(JSON.stringify({ result, verification: final }, null, 2))
    else {
      console.log(`fresh attestation from ${service}\nnonce: ${nonce}${digest === undefined ? '' : `\ncustom_digest: ${digest}`}\n`)
      console.log(formatResult(final, hintsFor(final, values)))
    }
    return final.valid ? EXIT_OK : EXIT_INVALID
  } finally {
    await session.close()
  }
}
