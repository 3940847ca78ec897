// nec01 fetch: read what a service published (announcement, profile, relay lists, recent
// notes) and verify each: the announcement as NEC-02 with the build, instance and release
// signatures it carries, the others by their tee_root. With --release-signers the release
// signatures those maintainers published are looked up on the same relays.
import { accessSync, constants, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as kinds from 'nostr-tools/kinds'
import { ANNOUNCEMENT_KIND, LEGACY_RELEASE_KIND, RELEASE_KIND } from '../../nec01/kinds.js'
import { verifyNecEvent } from '../../nec01/necs.js'
import { isEventShape } from '../../nec01/nostr.js'
import { MAX_RELEASES } from '../../nec01/trust.js'
import type { NostrEvent, TeeRootOptions, VerifyResult } from '../../nec01/types.js'
import { clientIdentity, clientRelays, openSession, parsePubkey, parseTimeout, type ClientSession } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { formatResult } from '../cli/format.js'
import { hintsFor } from '../cli/hints.js'
import { NEC_TRUST_ARG_OPTIONS, NEC_TRUST_USAGE, necTrustOptions } from '../cli/nec-trust.js'
import { TRUST_ARG_OPTIONS, TRUST_USAGE, trustOptions } from '../cli/trust.js'

export const USAGE = `usage: nec01 fetch <npub|hex> [--relay URL]... [--limit N] [--timeout S] [--json] [--save DIR] [trust options]

Fetches the service's latest announcement (13793), profile (0), DM relays (10050), relay
list (10002) and recent notes, and verifies each: the announcement with the build,
instance and release signatures it carries (who built, launched and released it), the
others by their tee_root. With --release-signers, the release signatures (63794) those
maintainers published on these relays count too: no --pcrs needed.

  --relay URL        relay to read; repeatable (default: relays.json)
  --relays FILE      relay list file
  --limit N          recent notes of other kinds to check (default 10)
  --timeout S        seconds to wait for relays (default 10)
  --json             print [{ kind, id, created_at, verification }] as JSON
  --save DIR         also write each event fetched to DIR/KIND-ID.json (for nec01 verify);
                     DIR is made if missing, not its parents
${TRUST_USAGE}

${NEC_TRUST_USAGE}

exit: 0 every event found verifies, 1 one does not or none was found, 2 usage`

const KIND_NAMES: Record<number, string> = {
  [kinds.Metadata]: 'profile',
  [kinds.DirectMessageRelaysList]: 'DM relays',
  [kinds.RelayList]: 'relay list',
  [ANNOUNCEMENT_KIND]: 'announcement',
}

/**
 * Makes DIR (not its parents) before anything is fetched, so a path that cannot be written is
 * a usage error at once. Not recursive: under /proc, Node's recursive mkdir never returns.
 */
function saveDir(dir: string): void {
  try {
    if (!existsSync(dir)) mkdirSync(dir)
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
    accessSync(dir, constants.W_OK)
  } catch (err) {
    throw saveError(dir, err)
  }
}

function saveError(dir: string, err: unknown): CliError {
  const code = (err as NodeJS.ErrnoException).code
  const why = code === 'ENOENT' ? 'its parent directory does not exist' : code === 'ENOTDIR' ? 'not a directory' : code === 'EACCES' ? 'permission denied' : (code ?? 'error')
  return new CliError(`--save: ${dir}: cannot write there (${why})`)
}

/** One file per event, as relays sent it: what `nec01 verify FILE` reads. */
function saveEvents(dir: string, events: NostrEvent[]): void {
  try {
    for (const e of events) writeFileSync(join(dir, `${e.kind}-${e.id}.json`), `${JSON.stringify(e, null, 2)}\n`)
  } catch (err) {
    throw saveError(dir, err)
  }
  console.error(`saved ${events.length} event${events.length === 1 ? '' : 's'} to ${dir} (KIND-ID.json; check one with nec01 verify FILE)`)
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('fetch', USAGE, args, {
    ...TRUST_ARG_OPTIONS,
    ...NEC_TRUST_ARG_OPTIONS,
    relay: { type: 'string', multiple: true },
    relays: { type: 'string' },
    limit: { type: 'string' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
    save: { type: 'string' },
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new CliError('expected exactly one <npub|hex> (see nec01 fetch --help)')
  const service = parsePubkey(positionals[0] ?? '')
  const timeoutSec = parseTimeout(values.timeout, 10)
  const limit = values.limit === undefined ? 10 : Number(values.limit)
  if (!Number.isInteger(limit) || limit < 0 || limit > 500) throw new CliError(`--limit: expected 0..500, got '${values.limit}'`)
  const { options: base, warnings } = trustOptions(values)
  const options: TeeRootOptions = { ...base, ...necTrustOptions(values) }
  const relays = clientRelays(values.relay, values.relays)
  if (values.save !== undefined) saveDir(values.save)
  for (const w of warnings) console.error(w)

  const session = openSession(clientIdentity(undefined).identity, relays)
  let events: NostrEvent[]
  let found: NostrEvent[]
  try {
    ;[events, found] = await Promise.all([serviceEvents(session, service, limit, timeoutSec), publishedReleases(session, options.releaseSigners, timeoutSec)])
  } finally {
    await session.close()
  }
  // Release signatures stand on their own, wherever found: those the announcement carries
  // count for the service's other events too (each is checked against their attestation).
  const releases = [...(options.releases ?? []), ...found, ...carriedReleases(events)]
  if (releases.length > 0) options.releases = releases.slice(0, MAX_RELEASES)
  if (events.length === 0) throw new CliError(`nothing from ${service} found on these relays within ${timeoutSec} s`, EXIT_INVALID)
  if (values.save !== undefined) saveEvents(values.save, events)

  const results: Array<{ kind: number; id: string; created_at: number; verification: VerifyResult }> = []
  // events are in order: the announcement, when found, comes first
  let rest = options
  for (const e of events) {
    const verification = await verifyNecEvent(e, e.kind === ANNOUNCEMENT_KIND ? options : rest)
    if (e.kind === ANNOUNCEMENT_KIND) rest = pinnedByAnnouncement(options, verification)
    results.push({ kind: e.kind, id: e.id, created_at: e.created_at, verification })
  }
  const allValid = results.every((r) => r.verification.valid)
  if (values.json === true) console.log(JSON.stringify(results, null, 2))
  else {
    for (const r of results) {
      console.log(`${r.verification.valid ? '✓' : '✗'} kind ${r.kind} ${KIND_NAMES[r.kind] ?? 'note'} ${r.id}${r.verification.valid ? '' : ` — INVALID (${r.verification.reason ?? ''})`}`)
    }
    if (options.releaseSigners !== undefined) console.log(`\n${found.length} release signature${found.length === 1 ? '' : 's'} (kind ${RELEASE_KIND}) by the --release-signers found on these relays`)
    // the announcement says the most: who built, launched and released what runs
    const shown = results.find((r) => r.kind === ANNOUNCEMENT_KIND) ?? results[0]
    if (shown !== undefined) console.log(`\n${formatResult(shown.verification, hintsFor(shown.verification, values))}`)
    console.log(`\n${results.filter((r) => r.verification.valid).length}/${results.length} events verified`)
  }
  return allValid ? EXIT_OK : EXIT_INVALID
}

/** Latest of each replaceable kind (the announcement first), then recent notes not already listed. */
async function serviceEvents(session: ClientSession, service: string, limit: number, timeoutSec: number): Promise<NostrEvent[]> {
  const fetchOpts = { timeoutMs: timeoutSec * 1000 }
  const [replaceable, notes] = await Promise.all([
    session.pool.fetchEvents([{ kinds: [kinds.Metadata, kinds.DirectMessageRelaysList, kinds.RelayList, ANNOUNCEMENT_KIND], authors: [service] }], fetchOpts),
    limit === 0 ? Promise.resolve([]) : session.pool.fetchEvents([{ authors: [service], limit }], fetchOpts),
  ])
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
  const replaceables = [...latest.values()].sort((a, b) => Number(b.kind === ANNOUNCEMENT_KIND) - Number(a.kind === ANNOUNCEMENT_KIND))
  return [...replaceables, ...others]
}

/**
 * Build and launcher signatures count only inside the announcement (NEC-03/04). Once it
 * verified with --builder/--launcher, the PCR8/PCR4 it proved theirs are what the
 * service's other events must attest, in place of the people.
 */
function pinnedByAnnouncement(options: TeeRootOptions, announcement: VerifyResult): TeeRootOptions {
  const att = announcement.attestation
  if ((options.builder === undefined && options.launcher === undefined) || !announcement.valid || att === null) return options
  const { builder, launcher, ...rest } = options
  const pinned: Record<string, string> = {}
  if (builder !== undefined && att.pcrs['8'] !== undefined) pinned['8'] = att.pcrs['8']
  if (launcher !== undefined && att.pcrs['4'] !== undefined) pinned['4'] = att.pcrs['4']
  const given = options.expectedPcrs ?? {}
  return { ...rest, expectedPcrs: { ...given, ...pinned } }
}

/** The release events the announcement carries; malformed ones are the announcement's verdict, not read here. */
function carriedReleases(events: NostrEvent[]): NostrEvent[] {
  const announcement = events.find((e) => e.kind === ANNOUNCEMENT_KIND)
  const out: NostrEvent[] = []
  for (const tag of announcement?.tags ?? []) {
    if (tag[0] !== 'release' || tag[1] === undefined) continue
    try {
      const e: unknown = JSON.parse(tag[1])
      if (isEventShape(e)) out.push(e)
    } catch {
      // not JSON: the announcement's own check reports it
    }
  }
  return out
}

/** The release signatures the trusted maintainers published (NEC-05), newest first; none without signers. */
async function publishedReleases(session: ClientSession, signers: string[] | undefined, timeoutSec: number): Promise<NostrEvent[]> {
  if (signers === undefined) return []
  const authors = [...new Set(signers)]
  const events = await session.pool.fetchEvents([{ kinds: [RELEASE_KIND, LEGACY_RELEASE_KIND], authors }], { timeoutMs: timeoutSec * 1000 })
  // a relay may answer more than was asked: only the named authors count
  return events.filter((e) => authors.includes(e.pubkey)).sort((a, b) => b.created_at - a.created_at)
}
