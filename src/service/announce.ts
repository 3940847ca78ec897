// What the service publishes on start and after every refresh, so clients and enclave
// explorers can find it, DM it and check it: profile, DM inbox relays, relay list and the
// NEC-02 announcement with the signatures it holds; and the rounds that send them, once
// per root and relay.
import * as kinds from 'nostr-tools/kinds'
import type { EventTemplate } from 'nostr-tools/pure'
import { buildAnnouncement } from '../../nec01/announcement.js'
import type { LineageEntry } from '../../nec01/upgrade.js'
import type { Logger } from '../log.js'
import type { RelayEntry } from '../relays/config.js'
import type { RelayStatus } from '../relays/pool.js'
import type { Publisher } from './publish.js'
import { countUp } from './counters.js'
import type { RootKeeper, RootState } from './root.js'
import { NO_SIGNATURES, type HeldSignatures } from './signatures.js'
import { isWriteRelay } from './sink.js'
import { errorText } from '../../nec01/errors.js'

export interface ProfileInfo {
  name: string
  about?: string
  picture?: string
  version: string
  npub: string
  /** the root events' t: a dev service is checked with --expect dev */
  t?: 'prod' | 'dev'
  /** simulated: no AWS chain, so the verify command needs the simulator's root */
  tee?: 'nsm' | 'simulated'
}

/**
 * The trust options with which the client commands accept this service (a dev service fails
 * the defaults): the serve banner's `try:` line and the profile's "Verify it" both use them.
 * `rootPem`: where the simulator's root is, as the reader should see it.
 */
export function trustFlags(tee: 'nsm' | 'simulated', t: 'prod' | 'dev', rootPem: string): string {
  if (tee === 'simulated') return `--root ${rootPem} --any-pcrs --expect dev`
  return `--pcrs pcrs.json${t === 'dev' ? ' --expect dev' : ''}`
}

function verifyFlags(p: ProfileInfo): string {
  const flags = trustFlags(p.tee ?? 'nsm', p.t ?? 'prod', "<the simulator's root.pem>")
  return `${flags}   (${p.tee === 'simulated' ? 'development: simulated NSM, not an enclave' : 'PCRs from the published build'})`
}

export function profileTemplate(p: ProfileInfo, createdAt: number): EventTemplate {
  const about =
    p.about ??
    [
      'A Nostr service running in an AWS Nitro Enclave (NEC-01).',
      'Every event it signs carries a tee_root tag: an AWS-signed attestation binding this key to the enclave image.',
      `Verify it: npx nec01 fetch ${p.npub} ${verifyFlags(p)}`,
      'DM "help" to see what it answers.',
    ].join('\n')
  const content: Record<string, string> = { name: p.name, about }
  if (p.picture !== undefined) content.picture = p.picture
  return { kind: kinds.Metadata, created_at: createdAt, content: JSON.stringify(content), tags: [] }
}

export function dmRelaysTemplate(relays: RelayEntry[], createdAt: number): EventTemplate {
  return { kind: kinds.DirectMessageRelaysList, created_at: createdAt, content: '', tags: relays.filter((r) => r.read).map((r) => ['relay', r.url]) }
}

export function relayListTemplate(relays: RelayEntry[], createdAt: number): EventTemplate {
  const tags = relays.map((r) => (r.read && r.write ? ['r', r.url] : ['r', r.url, r.read ? 'read' : 'write']))
  return { kind: kinds.RelayList, created_at: createdAt, content: '', tags }
}

export interface AnnouncementInfo {
  root: RootState
  relays: RelayEntry[]
  t: 'prod' | 'dev'
  name: string
  version: string
  /** what the service is (the announcement's content) */
  content: string
  /** the repository URL (r); null: none was given, and none is claimed */
  repo: string | null
  /** kinds the service answers on, advertised for programs (e.g. the JSON-RPC kind) */
  kinds?: number[]
  /** the builder, launcher and release signatures that hold for this root */
  signatures?: HeldSignatures
  /** the builds that held this key before (docs/upgrades.md) */
  lineage?: LineageEntry[]
  /** the request policy (limits.ts policyTags, e.g. ["pow", "20"]), appended as given */
  policyTags?: string[][]
}

/** NEC-02: r, t, tee_root, expiration (the root's), x for PCR0/1/2 (4 and 8 when set), name, v, relay, k, and the signatures. */
export function announcementTemplate(a: AnnouncementInfo, createdAt: number): EventTemplate {
  const held = a.signatures ?? NO_SIGNATURES
  const template = buildAnnouncement({
    root: a.root.event,
    pcrs: a.root.attestation.pcrs,
    content: a.content,
    r: a.repo ?? '',
    t: a.t,
    name: a.name,
    v: a.version,
    relays: a.relays.filter((r) => r.read).map((r) => r.url),
    ...(a.kinds === undefined ? {} : { kinds: a.kinds }),
    ...(held.build === null ? {} : { build: held.build }),
    ...(held.instance === null ? {} : { instance: held.instance }),
    releases: held.releases,
    ...(a.lineage === undefined ? {} : { lineage: a.lineage }),
    created_at: createdAt,
  })
  // A service that was told no repository claims none rather than an invented URL.
  const tags = a.repo === null ? template.tags.filter((t) => t[0] !== 'r') : template.tags
  // Hook: the request policy (issue 17), composed in limits.ts; this module only appends it.
  return { ...template, tags: [...tags, ...(a.policyTags ?? [])] }
}

/** The announcement's content: the profile's about when given, else what the service is. */
function announcementContent(d: ServiceDescription): string {
  return d.about ?? `${d.name}: a Nostr service running in an AWS Nitro Enclave (NEC-01). DM "help" to see what it answers.`
}

/** Everything the four describing events say about the service. */
export interface ServiceDescription extends ProfileInfo {
  t: 'prod' | 'dev'
  tee: 'nsm' | 'simulated'
  relays: RelayEntry[]
  /** kinds the service answers on (the announcement's k tags) */
  kinds: number[]
  /** the repository URL the announcement names (r), or null */
  repo: string | null
  /** the builds that held this key before, oldest first */
  lineage?: LineageEntry[]
  /** the request policy tags (limits.ts policyTags) */
  policyTags?: string[][]
}

/** The four describing events of one round, all naming `root`. */
export function describingTemplates(d: ServiceDescription, root: RootState, createdAt: number, signatures: HeldSignatures = NO_SIGNATURES): EventTemplate[] {
  const { relays, kinds: answered, repo, lineage, policyTags, ...profile } = d
  return [
    profileTemplate(profile, createdAt),
    dmRelaysTemplate(relays, createdAt),
    relayListTemplate(relays, createdAt),
    announcementTemplate({ root, relays, t: d.t, name: d.name, version: d.version, content: announcementContent(d), repo, kinds: answered, signatures, ...(lineage === undefined ? {} : { lineage }), ...(policyTags === undefined ? {} : { policyTags }) }, createdAt),
  ]
}

export interface AnnouncerOptions {
  description: ServiceDescription
  roots: Pick<RootKeeper, 'current'>
  /** the signatures that hold for a root (signatures.ts); none when absent */
  signatures?: (root: RootState) => Promise<HeldSignatures>
  publisher: Pick<Publisher, 'publish'>
  counters: Record<string, number>
  log: Logger
}

export interface Announcer {
  /** a round for `relays` after the rounds already queued; `force`: even those that have this root's */
  queue(relays: string[], force: boolean): void
  /** the pool's status callback: a relay coming up gets a round (a returning one, forced) */
  relayStatus(status: Pick<RelayStatus, 'url' | 'connected'>): void
  /** the next connection to `url` counts as its first (a reconnect the rotation round covers) */
  forgetConnection(url: string): void
}

/**
 * Announcement rounds, one at a time and in order: a reconnect during the first round then
 * finds the relay already served instead of sending everything twice.
 */
export function createAnnouncer(opts: AnnouncerOptions): Announcer {
  /** url → id of the root whose announcements reached that relay (accepted, refused or skipped) */
  const announcedTo = new Map<string, string>()
  const links = createLinkTracker()
  let announcing: Promise<void> = Promise.resolve()
  const queue = (relays: string[], force: boolean): void => {
    announcing = announcing.then(() => announceRound(opts, announcedTo, relays, force)).catch((err: unknown) => opts.log.error('announce failed', { error: err }))
  }
  return {
    queue,
    relayStatus(status) {
      const edge = links.update(status)
      if (edge !== null && isWriteRelay(opts.description.relays, status.url)) queue([status.url], edge === 'returned')
    },
    forgetConnection: (url) => links.forget(url),
  }
}

/**
 * The pool reports every change (AUTH too): only the edge from down to up counts. A relay
 * that comes back (restart, network) may have lost the announcements, and clients look
 * there; one reaching us for the first time gets them unless the first round reached it.
 */
function createLinkTracker(): {
  /** the edge this status makes, if any: a relay's first connection or its return */
  update(status: Pick<RelayStatus, 'url' | 'connected'>): 'first' | 'returned' | null
  forget(url: string): void
} {
  const everConnected = new Set<string>()
  const connectedNow = new Set<string>()
  return {
    update({ url, connected }) {
      if (!connected) {
        connectedNow.delete(url)
        return null
      }
      if (connectedNow.has(url)) return null
      connectedNow.add(url)
      const returned = everConnected.has(url)
      everConnected.add(url)
      return returned ? 'returned' : 'first'
    },
    forget(url) {
      everConnected.delete(url)
    },
  }
}

async function announceRound(opts: AnnouncerOptions, announcedTo: Map<string, string>, relays: string[], force: boolean): Promise<void> {
  // The root at the time of sending, not of queueing: a rotation may have come between.
  const root = opts.roots.current()
  if (root === null) return
  const targets = force ? relays : relays.filter((url) => announcedTo.get(url) !== root.event.id)
  if (targets.length === 0) return
  const signatures = opts.signatures === undefined ? NO_SIGNATURES : await opts.signatures(root)
  const templates = describingTemplates(opts.description, root, Math.floor(Date.now() / 1000), signatures)
  const reached = await publishRound(opts, templates, targets)
  for (const url of reached) announcedTo.set(url, root.event.id)
}

/** Sends each template to `targets`; resolves to the relays the whole round reached. */
async function publishRound(opts: AnnouncerOptions, templates: EventTemplate[], targets: string[]): Promise<Set<string>> {
  // A relay that was down missed the round; one that refused or was skipped (too large)
  // would only refuse again, so its first connection does not earn it a second try.
  const reached = new Set(targets)
  for (const template of templates) {
    try {
      const { results } = await opts.publisher.publish(template, { relays: targets })
      const counter = results.some((r) => r.ok) ? 'published' : 'publish_unaccepted'
      countUp(opts.counters, counter)
      for (const url of targets) {
        const r = results.find((x) => x.url === url)
        if (r === undefined || r.code === 'not-connected') reached.delete(url)
      }
    } catch (err) {
      reached.clear()
      opts.log.error('publish failed', { kind: template.kind, error: errorText(err) })
    }
  }
  return reached
}
