// nec01 dm: send a DM to an attested service, wait for its reply, and verify the reply's
// tee_root with the same trust options as `nec01 verify`.
import * as kinds from 'nostr-tools/kinds'
import { verifyTeeRoot } from '../../nec01/event.js'
import type { NostrEvent, VerifyOptions, VerifyResult } from '../../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC, RECENT_WINDOW_SEC } from '../../nec01/windows.js'
import { clientIdentity, clientRelays, noReply, openSession, parsePubkey, parseTimeout, sendRequest, type ClientSession } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { formatResult } from '../cli/format.js'
import { hintsFor } from '../cli/hints.js'
import { checkPow, choosePow, mineRequest, parsePowFlag, POW_USAGE, powHint, type PowChoice } from '../cli/pow.js'
import type { Rumor } from '../service/identity.js'
import { TRUST_ARG_OPTIONS, TRUST_USAGE, trustOptions } from '../cli/trust.js'

export const USAGE = `usage: nec01 dm <npub|hex> <text> [--relay URL]... [--nip04] [--timeout S] [--pow N] [--json] [trust options]

Sends <text> as a DM (NIP-17 gift wrap by default, NIP-04 with --nip04), waits for the
reply and verifies its tee_root. Uses a fresh throwaway key unless --sec or NEC01_SECRET.

  --relay URL        relay to use; repeatable (default: relays.json)
  --relays FILE      relay list file
  --nip04            use a NIP-04 kind 4 DM instead of NIP-17
  --timeout S        seconds to wait for the reply (default 30)
  --sec KEY          send as this key (nsec or hex); prefer NEC01_SECRET
${POW_USAGE}
  --json             print { transport, from, reply, verification } as JSON
${TRUST_USAGE}

exit: 0 reply verified, 1 invalid reply or none in time, 2 usage`

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('dm', USAGE, args, {
    ...TRUST_ARG_OPTIONS,
    relay: { type: 'string', multiple: true },
    relays: { type: 'string' },
    nip04: { type: 'boolean' },
    timeout: { type: 'string' },
    sec: { type: 'string' },
    pow: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length < 2) throw new CliError('expected <npub|hex> and <text> (see nec01 dm --help)')
  const service = parsePubkey(positionals[0] ?? '')
  const text = positionals.slice(1).join(' ')
  const timeoutSec = parseTimeout(values.timeout)
  const powFlag = parsePowFlag(values.pow)
  const { options, warnings } = trustOptions(values)
  const { identity } = clientIdentity(values.sec ?? process.env.NEC01_SECRET)
  const relays = clientRelays(values.relay, values.relays)
  for (const w of warnings) console.error(w)
  const session = openSession(identity, relays)
  try {
    const ask: Ask = { session, service, text, pow: await choosePow(session, service, powFlag, timeoutSec), timeoutSec, options }
    const reply = values.nip04 === true ? await askNip04(ask) : await askNip17(ask)
    if (values.json === true) {
      console.log(JSON.stringify({ transport: reply.transport, from: service, reply: reply.text, event: reply.event, verification: reply.verification }, null, 2))
    } else {
      console.log(`reply (${reply.transport}):\n${reply.text}\n`)
      console.log(formatResult(reply.verification, hintsFor(reply.verification, values)))
    }
    return reply.verification.valid ? EXIT_OK : EXIT_INVALID
  } finally {
    await session.close()
  }
}

interface Ask {
  session: ClientSession
  service: string
  text: string
  pow: PowChoice
  timeoutSec: number
  options: VerifyOptions
}

interface Reply {
  text: string
  verification: VerifyResult
  transport: 'nip17' | 'nip04'
  event: NostrEvent | Rumor
}

/** A kind 4 DM, and its reply (the kind 4 that names it in an e tag). */
async function askNip04({ session, service, text, pow, timeoutSec, options }: Ask): Promise<Reply> {
  const { identity } = session
  const now = Math.floor(Date.now() / 1000)
  const template = await mineRequest({ kind: kinds.EncryptedDirectMessage, created_at: now, content: identity.nip04Encrypt(service, text), tags: [['p', service]] }, identity.pubkey, pow.bits)
  const request = checkPow(identity.sign(template), pow.bits)
  const waiting = session.waitFor(
    { kinds: [kinds.EncryptedDirectMessage], authors: [service], '#p': [identity.pubkey], since: now - RECENT_WINDOW_SEC },
    (e) => e.tags.some((t) => t[0] === 'e' && t[1] === request.id),
    timeoutSec * 1000,
  )
  await sendRequest(session, request, timeoutSec * 1000)
  const event = await waiting
  if (event === null) throw noReply(timeoutSec, powHint(pow))
  return { transport: 'nip04', event, text: identity.nip04Decrypt(service, event.content), verification: await verifyTeeRoot(event, options) }
}

/** A NIP-17 DM (the gift wrap carries the proof of work), and the wrapped reply whose rumor names it. */
async function askNip17({ session, service, text, pow, timeoutSec, options }: Ask): Promise<Reply> {
  const { identity } = session
  const now = Math.floor(Date.now() / 1000)
  const rumorTemplate = { kind: kinds.PrivateDirectMessage, created_at: now, content: text, tags: [['p', service]] }
  const { wrap, rumor: request } = await identity.giftWrapMined(rumorTemplate, service, (template, pubkey) => mineRequest(template, pubkey, pow.bits))
  checkPow(wrap, pow.bits)
  let rumor: Rumor | null = null
  const waiting = session.waitFor(
    { kinds: [kinds.GiftWrap], '#p': [identity.pubkey], since: now - GIFT_WRAP_WINDOW_SEC },
    (e) => {
      const r = identity.unwrap(e) // verifies the seal; rumor pubkey == seal signer
      if (r.pubkey !== service || !r.tags.some((t) => t[0] === 'e' && t[1] === request.id)) return false
      rumor = r
      return true
    },
    timeoutSec * 1000,
  )
  await sendRequest(session, wrap, timeoutSec * 1000)
  if ((await waiting) === null || rumor === null) throw noReply(timeoutSec, powHint(pow))
  const got: Rumor = rumor
  return { transport: 'nip17', event: got, text: got.content, verification: await verifyTeeRoot(got, { ...options, sealSigner: got.pubkey }) }
}
