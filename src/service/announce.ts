// What the service publishes on start and after every refresh, so clients and enclave
// explorers can find it, DM it and check it: profile, DM inbox relays, relay list and
// the NEC-02-style enclave announcement.
import type { EventTemplate } from 'nostr-tools/pure'
import type { RelayEntry } from '../relays/config.js'
import type { RootState } from './root.js'

export const KIND_PROFILE = 0
/** NIP-17 DM inbox relays */
export const KIND_DM_RELAYS = 10050
/** NIP-65 relay list */
export const KIND_RELAY_LIST = 10002
/** NEC-02 enclave announcement (replaceable), listed by enclave explorers */
export const KIND_ANNOUNCEMENT = 13793

/** PCRs named in the announcement: the image (0, 1, 2), the instance (4) and the signer (8). */
const ANNOUNCED_PCRS = [0, 1, 2, 4, 8]

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
  return { kind: KIND_PROFILE, created_at: createdAt, content: JSON.stringify(content), tags: [] }
}

export function dmRelaysTemplate(relays: RelayEntry[], createdAt: number): EventTemplate {
  return { kind: KIND_DM_RELAYS, created_at: createdAt, content: '', tags: relays.filter((r) => r.read).map((r) => ['relay', r.url]) }
}

export function relayListTemplate(relays: RelayEntry[], createdAt: number): EventTemplate {
  const tags = relays.map((r) => (r.read && r.write ? ['r', r.url] : ['r', r.url, r.read ? 'read' : 'write']))
  return { kind: KIND_RELAY_LIST, created_at: createdAt, content: '', tags }
}

export interface AnnouncementInfo {
  root: RootState
  relays: RelayEntry[]
  t: 'prod' | 'dev'
  version: string
  /** kinds the service answers on, advertised for programs (e.g. the JSON-RPC kind) */
  kinds?: number[]
}

export function announcementTemplate(a: AnnouncementInfo, createdAt: number): EventTemplate {
  const pcrs = a.root.attestation.pcrs
  const tags: string[][] = [
    ['expiration', String(a.root.expiresAt)],
    ['t', a.t],
    ['m', a.root.attestation.module_id],
    ['v', a.version],
  ]
  for (const index of ANNOUNCED_PCRS) {
    const value = pcrs[String(index)]
    // PCR4 and PCR8 are zero when not set (no instance binding, unsigned image): omit them then.
    if (value !== undefined && (index <= 2 || !/^0+$/.test(value))) tags.push(['x', value, `PCR${index}`])
  }
  for (const r of a.relays) if (r.read) tags.push(['relay', r.url])
  for (const k of a.kinds ?? []) tags.push(['k', String(k)])
  return { kind: KIND_ANNOUNCEMENT, created_at: createdAt, content: '', tags }
}
