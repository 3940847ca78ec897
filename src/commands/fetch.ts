// nec01 fetch: read what a service published (profile, announcement, relay lists, recent
// notes) and verify the tee_root of each.
import * as kinds from 'nostr-tools/kinds'
import { verifyTeeRoot } from '../../nec01/event.js'
import { ANNOUNCEMENT_KIND } from '../../nec01/kinds.js'
import type { NostrEvent, VerifyResult } from '../../nec01/types.js'
import { clientIdentity, clientRelays, openSession, parsePubkey, parseTimeout } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { formatResult } from '../cli/format.js'

import { TRUST_ARG_OPTIONS, TRUST_USAGE, trustOptions } from '../cli/trust.js'

export const USAGE = `usage: nec01 fetch <npub|hex> [--relay URL]... [--limit N] [--timeout S] [--json] [trust options]

Fetches the service's latest profile (0), DM relays (10050), relay list (10002),
announcement (13793) and recent notes, and verifies the tee_root tag of each.

  --relay URL        relay to read; repeatable (default: relays.json)
  --relays FILE      relay list file
  --limit N          recent notes of other kinds to check (default 10)
  --timeout S        seconds to wait for relays (default 10)
  --json             print [{ kind, id, created_at, verification }] as JSON
${TRUST_USAGE}

exit: 0 every event found verifies, 1 one does not or none was found, 2 usage`

const KIND_NAMES: Record<number, string> = {
  [kinds.Metadata]: 'profile',
  [kinds.DirectMessageRelaysList]: 'DM relays',
  [kinds.RelayList]: 'relay list',
  [ANNOUNCEMENT_KIND]: 'announcement',
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('fetch', USAGE, args, {
    ...TRUST_ARG_OPTIONS,
    relay: { type: 'string', multiple: true },
    relays: { type: 'string' },
    limit: { type: 'string' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new CliError('expected exactly one <npub|hex> (see nec01 fetch --help)')
  const service = parsePubkey(positionals[0] ?? '')
  const timeoutSec = parseTimeout(values.timeout, 10)
  const limit = values.limit === undefined ? 10 : Number(values.limit)
  if (!Number.isInteger(limit) || limit < 0 || limit > 500) throw new CliError(`--limit: expected 0..500, got '${values.limit}'`)
  const { options, warnings } = trustOptions(values)
  for (const w of warnings) console.error(w)

  const session = openSession(clientIdentity(undefined).identity, clientRelays(values.relay, values.relays))
  let events: NostrEvent[]
  try {
    const fetchOpts = { timeoutMs: timeoutSec * 1000 }
    const [replaceable, notes] = await Promise.all([
      session.pool.fetchEvents([{ kinds: [kinds.Metadata, kinds.DirectMessageRelaysList, kinds.RelayList, ANNOUNCEMENT_KIND], authors: [service] }], fetchOpts),
      limit === 0 ? Promise.resolve([]) : session.pool.fetchEvents([{ authors: [service], limit }], fetchOpts),
    ])
    // Latest of each replaceable kind, then the recent notes not already listed.
    const latest = new Map<number, NostrEvent>()
    for (const e of replaceable) {
      const prev = latest.get(e.kind)
      if (e.pubkey === service && (prev === undefined || e.created_at > prev.created_at)) latest.set(e.kind, e)
    }
    const chosen = new Set([...latest.values()].map((e) => e.id))
    const others = notes
      .filter((e) => e.pubkey === service && !chosen.has(e.id) && !(e.kind in KIND_NAMES))
      .sort((a, b) => b.created_at - a.created_at)
      .slice(0, limit)
    events = [...latest.values(), ...others]
  } finally {
    await session.close()
  }
  if (events.length === 0) throw new CliError(`nothing from ${service} found on these relays within ${timeoutSec} s`, EXIT_INVALID)

  const results: Array<{ kind: number; id: string; created_at: number; verification: VerifyResult }> = []
  for (const e of events) results.push({ kind: e.kind, id: e.id, created_at: e.created_at, verification: await verifyTeeRoot(e, options) })
  const allValid = results.every((r) => r.verification.valid)
  if (values.json === true) console.log(JSON.stringify(results, null, 2))
  else {
    for (const r of results) {
      console.log(`${r.verification.valid ? '✓' : '✗'} kind ${r.kind} ${KIND_NAMES[r.kind] ?? 'note'} ${r.id}${r.verification.valid ? '' : ` — INVALID (${r.verification.reason ?? ''})`}`)
    }
    const first = results[0]
    if (first !== undefined) console.log(`\n${formatResult(first.verification)}`)
    console.log(`\n${results.filter((r) => r.verification.valid).length}/${results.length} events verified`)
  }
  return allValid ? EXIT_OK : EXIT_INVALID
}
