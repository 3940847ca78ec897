// nec01 dm: send a DM to an attested service, wait for its reply, and verify the reply's
// tee_root with the same trust options as `nec01 verify`.
import * as kinds from 'nostr-tools/kinds'
import { verifyTeeRoot } from '../../nec01/event.js'
import type { NostrEvent, VerifyResult } from '../../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC, RECENT_WINDOW_SEC } from '../../nec01/windows.js'
import { clientIdentity, clientRelays, noReply, openSession, parsePubkey, parseTimeout, sendRequest } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { formatResult } from '../cli/format.js'
import { hintsFor } from '../cli/hints.js'
import type { Rumor } from '../service/identity.js'

import { TRUST_ARG_OPTIONS, TRUST_USAGE, trustOptions } from '../cli/trust.js'

export const USAGE = `usage: nec01 dm <npub|hex> <text> [--relay URL]... [--nip04] [--timeout S] [--json] [trust options]

Sends <text> as a DM (NIP-17 gift wrap by default, NIP-04 with --nip04), waits for the
reply and verifies its tee_root. Uses a fresh throwaway key unless --sec or NEC01_SECRET.

  --relay URL        relay to use; repeatable (default: relays.json)
  --relays FILE      relay list file
  --nip04            use a NIP-04 kind 4 DM instead of NIP-17
  --timeout S        seconds to wait for the reply (default 30)
  --sec KEY          send as this key (nsec or hex); prefer NEC01_SECRET
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
    json: { type: 'boolean' },
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length < 2) throw new CliError('expected <npub|hex> and <text> (see nec01 dm --help)')
  const service = parsePubkey(positionals[0] ?? '')
  const text = positionals.slice(1).join(' ')
  const timeoutSec = parseTimeout(values.timeout)
  const { options, warnings } = trustOptions(values)
  const { identity } = clientIdentity(values.sec ?? process.env.NEC01_SECRET)
  const relays = clientRelays(values.relay, values.relays)
  for (const w of warnings) console.error(w)
  const session = openSession(identity, relays)
  const now = Math.floor(Date.now() / 1000)

  try {
    let reply: { text: string; verification: VerifyResult; transport: 'nip17' | 'nip04'; event: NostrEvent | Rumor }
    if (values.nip04 === true) {
      const request = identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: now, content: identity.nip04Encrypt(service, text), tags: [['p', service]] })
      const waiting = session.waitFor(
        { kinds: [kinds.EncryptedDirectMessage], authors: [service], '#p': [identity.pubkey], since: now - RECENT_WINDOW_SEC },
        (e) => e.tags.some((t) => t[0] === 'e' && t[1] === request.id),
        timeoutSec * 1000,
      )
      await sendRequest(session, request, timeoutSec * 1000)
      const event = await waiting
      if (event === null) throw noReply(timeoutSec)
      reply = { transport: 'nip04', event, text: identity.nip04Decrypt(service, event.content), verification: await verifyTeeRoot(event, options) }
    } else {
      const { wrap, rumor: request } = identity.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: now, content: text, tags: [['p', service]] }, service)
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
      if ((await waiting) === null || rumor === null) throw noReply(timeoutSec)
      const got: Rumor = rumor
      reply = { transport: 'nip17', event: got, text: got.content, verification: await verifyTeeRoot(got, { ...options, sealSigner: got.pubkey }) }
    }
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
