// nec01 history: the builds that have held a service's npub, checked from the relays —
// its announcement and lineage, its hand-over events, and the release signatures of each
// build — and any upgrade pending with its activation time (docs/upgrades.md).
import { iso } from '../../nec01/nostr.js'
import { ANNOUNCEMENT_KIND, RELEASE_KIND, UPGRADE_CANCELLED_KIND, UPGRADE_PENDING_KIND, UPGRADED_KIND } from '../../nec01/kinds.js'
import { historyLines, verifyHistory, type History } from '../../nec01/lineage.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { UpgradeVerifyOptions } from '../../nec01/upgrade.js'
import { clientIdentity, clientRelays, openSession, parsePubkey, parseTimeout } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { NEC_TRUST_ARG_OPTIONS, necTrustOptions } from '../cli/nec-trust.js'
import { trustOptions } from '../cli/trust.js'

export const USAGE = `usage: nec01 history <npub|hex> [--relay URL]... [--timeout S] [--json] [options]

The builds that have held this npub, oldest first: when each held it, who released it
(NEC-05), the hand-over event that moved the key on; and any upgrade pending, with its
activation time. Checked from the events on the relays: a lineage with a gap, a build no
release signature holds for, or a hand-over event that does not verify fails the command.

  --relay URL                 relay to read; repeatable (default: relays.json)
  --relays FILE               relay list file
  --timeout S                 seconds to wait for relays (default 10)
  --json                      print the whole history as JSON
  --root FILE                 trust this root certificate instead of the AWS Nitro root G1 (dev)
  --expect T                  t of the builds: prod (default), dev or any
  --release-signers NPUB,...  count only these maintainers' release signatures
  --release-threshold N       and at least this many per build (default 1)
  --repo URL                  the repository releases must name

exit: 0 the whole history verifies, 1 it does not (or nothing was found), 2 usage`

const HANDOVER_KINDS = [UPGRADE_PENDING_KIND, UPGRADE_CANCELLED_KIND, UPGRADED_KIND]

async function fetchAll(values: { relay?: string[]; relays?: string }, pubkey: string, timeoutMs: number): Promise<{ announcement: NostrEvent | null; events: NostrEvent[]; releases: NostrEvent[] }> {
  const session = openSession(clientIdentity(undefined).identity, clientRelays(values.relay, values.relays))
  try {
    const [announcements, events] = await Promise.all([
      session.pool.fetchEvents([{ kinds: [ANNOUNCEMENT_KIND], authors: [pubkey] }], { timeoutMs }),
      session.pool.fetchEvents([{ kinds: HANDOVER_KINDS, authors: [pubkey] }], { timeoutMs }),
    ])
    const announcement = announcements.filter((e) => e.pubkey === pubkey).sort((a, b) => b.created_at - a.created_at)[0] ?? null
    // every build's PCR0: the current one (announced) and those the hand-overs name
    const pcr0s = new Set<string>()
    for (const e of [...(announcement === null ? [] : [announcement]), ...events]) {
      for (const t of e.tags) if ((t[0] === 'x' && t[2] === 'PCR0') || t[0] === 'from' || t[0] === 'lineage') pcr0s.add(t[1] ?? '')
    }
    const releases = pcr0s.size === 0 ? [] : await session.pool.fetchEvents([{ kinds: [RELEASE_KIND], '#x': [...pcr0s] }], { timeoutMs })
    return { announcement, events, releases }
  } finally {
    await session.close()
  }
}

function print(h: History): void {
  console.log(`history of ${h.pubkey}\n`)
  for (const line of historyLines(h)) console.log(line)
  for (const p of h.pending.filter((x) => x.state !== 'pending')) {
    const by = p.cancelledBy === null ? '' : ` by the ${p.cancelledBy.role} ${p.cancelledBy.pubkey.slice(0, 12)}…`
    console.log(`${p.state}${by}: upgrade from PCR0 ${p.from.slice(0, 12)}… to PCR0 ${p.target[0].slice(0, 12)}…, asked ${iso(p.created_at)} (${p.id})`)
  }
  if (h.problems.length > 0) console.log(`\nINVALID:\n${h.problems.map((p) => `✗ ${p}`).join('\n')}`)
  else console.log(`\n✓ ${h.builds.length} build${h.builds.length === 1 ? '' : 's'}, every hand-over verified`)
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('history', USAGE, args, {
    relay: { type: 'string', multiple: true },
    relays: { type: 'string' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
    root: { type: 'string' },
    expect: { type: 'string' },
    'release-signers': NEC_TRUST_ARG_OPTIONS['release-signers'],
    'release-threshold': NEC_TRUST_ARG_OPTIONS['release-threshold'],
    repo: NEC_TRUST_ARG_OPTIONS.repo,
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new CliError('expected exactly one <npub|hex> (see nec01 history --help)')
  const pubkey = parsePubkey(positionals[0] ?? '')
  const timeoutSec = parseTimeout(values.timeout, 10)
  const { options: base } = trustOptions({ ...(values.root === undefined ? {} : { root: values.root }), ...(values.expect === undefined ? {} : { expect: values.expect }) })
  const trust = necTrustOptions(values)
  const options: UpgradeVerifyOptions = {
    ...(base.root === undefined ? {} : { root: base.root }),
    ...(base.expect === undefined ? {} : { expect: base.expect }),
    ...(trust.releaseSigners === undefined ? {} : { releaseSigners: trust.releaseSigners }),
    ...(trust.releaseThreshold === undefined ? {} : { releaseThreshold: trust.releaseThreshold }),
    ...(trust.repo === undefined ? {} : { repo: trust.repo }),
  }
  const found = await fetchAll(values, pubkey, timeoutSec * 1000)
  if (found.announcement === null && found.events.length === 0) throw new CliError(`nothing from ${pubkey} found on these relays within ${timeoutSec} s`, EXIT_INVALID)
  const history = await verifyHistory({ pubkey, ...found }, options)
  if (values.json === true) console.log(JSON.stringify(history, null, 2))
  else print(history)
  return history.valid ? EXIT_OK : EXIT_INVALID
}
