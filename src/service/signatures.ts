// The builder, launcher and release signatures (NEC-03/04/05) the service carries in its
// announcement. They reach it at run time (the parent instance, or a file in dev), so each
// is checked as a client would, against the service's own attestation (PCR8, PCR4,
// PCR0/1/2) and its own r and t, before it is carried; any other is logged and refused.
// Carrying a false one would make the service vouch for it. None at all is fine.
import { BUILD_KIND, LAUNCHER_KIND, RELEASE_KIND, successorKind } from '../../nec01/kinds.js'
import { verifyNecSignature } from '../../nec01/necs.js'
import { isEventShape, npub } from '../../nec01/nostr.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { Logger } from '../log.js'
import { FileReadError, readBoundedFile } from '../files.js'
import { MAX_SIGNATURES_BYTES, parseSignatureList, SignatureListError, SIGNATURES_PATH } from '../parent/signatures.js'
import type { RootState } from './root.js'
import { errorText } from '../../nec01/errors.js'

/** What the announcement carries: at most one build, one instance, and releases. */
export interface HeldSignatures {
  build: NostrEvent | null
  instance: NostrEvent | null
  releases: NostrEvent[]
}

export const NO_SIGNATURES: HeldSignatures = Object.freeze({ build: null, instance: null, releases: [] })

/** Releases carried: the verifier reads at most 16 (nec01/announcement.ts). */
const MAX_RELEASES = 16
const FETCH_TIMEOUT_MS = 5_000

/** What a signature must match: this service's attestation, repository and t. */
export interface SignatureScope {
  /** the attested PCRs, index → hex */
  pcrs: Record<string, string>
  /** the service's repository (the announcement's r); null: none was given */
  r: string | null
  t: 'prod' | 'dev'
  /** unix seconds (tests) */
  now?: number
}

type Role = 'build' | 'instance' | 'release'
const ROLES: Record<number, { role: Role; pcrs: number[] }> = {
  [BUILD_KIND]: { role: 'build', pcrs: [8] },
  [LAUNCHER_KIND]: { role: 'instance', pcrs: [4] },
  [RELEASE_KIND]: { role: 'release', pcrs: [0, 1, 2] },
}

/** The reason `event` is refused, or its role when it holds for this service. */
async function judge(event: unknown, scope: SignatureScope): Promise<{ role: Role } | { reason: string }> {
  if (!isEventShape(event)) return { reason: 'not a Nostr event' }
  const spec = ROLES[successorKind(event.kind)]
  if (spec === undefined) return { reason: `kind ${event.kind} is no builder, launcher or release signature` }
  // without its own r the service could not tell a release of its code from one of another repository
  if (spec.role === 'release' && scope.r === null) return { reason: 'a release names a repository and this service has none (serve --repo)' }
  const expectedPcrs: Record<string, string> = {}
  for (const i of spec.pcrs) {
    const value = scope.pcrs[String(i)]
    if (value === undefined) return { reason: `the attestation has no PCR${i}` }
    expectedPcrs[String(i)] = value
  }
  const result = await verifyNecSignature(event, {
    expectedPcrs,
    expect: scope.t,
    ...(scope.r === null ? {} : { repo: scope.r }),
    ...(scope.now === undefined ? {} : { now: scope.now }),
  })
  if (result.valid) return { role: spec.role }
  const failed = result.checks.find((c) => !c.ok)
  return { reason: `${result.reason ?? 'invalid'}: ${failed?.detail ?? ''}` }
}

function refused(log: Logger, event: unknown, reason: string): void {
  const e = isEventShape(event) ? event : null
  log.warn('signature refused', { kind: e?.kind ?? null, id: e?.id ?? null, signer: e === null ? null : npub(e.pubkey), reason })
}

/** Keeps what holds for `scope`, first come first kept; logs one line for each refusal. */
export async function acceptSignatures(events: readonly unknown[], scope: SignatureScope, log: Logger): Promise<HeldSignatures> {
  const held: HeldSignatures = { build: null, instance: null, releases: [] }
  for (const event of events) {
    const verdict = await judge(event, scope)
    if ('reason' in verdict) {
      refused(log, event, verdict.reason)
      continue
    }
    const e = event as NostrEvent
    if (verdict.role === 'release') {
      if (held.releases.some((r) => r.pubkey === e.pubkey)) refused(log, e, 'a second release by the same signer')
      else if (held.releases.length >= MAX_RELEASES) refused(log, e, `more than ${MAX_RELEASES} releases`)
      else held.releases.push(e)
    } else if (held[verdict.role] !== null) {
      refused(log, e, `a second ${verdict.role} signature`)
    } else {
      held[verdict.role] = e
    }
  }
  return held
}

/** Where the signature events come from; resolves to the raw list, throws when it cannot. */
export type SignatureSource = () => Promise<object[]>

/** Dev: a JSON array of events in a file, read again at each new attestation. */
export function fileSignatures(path: string): SignatureSource {
  return async () => {
    try {
      return parseSignatureList(readBoundedFile(path, MAX_SIGNATURES_BYTES).toString('utf8'), path)
    } catch (err) {
      if (err instanceof FileReadError) throw new SignatureListError(err.message)
      throw err
    }
  }
}

/**
 * In an enclave: the parent instance's list, from the proxy it already reaches
 * (`nec01 parent --signatures FILE`). Plain HTTP over the vsock bridge is enough: what
 * comes back is checked here, and a parent can only withhold or offer what is refused.
 */
export function parentSignatures(proxyUrl: string): SignatureSource {
  const url = new URL(SIGNATURES_PATH, new URL(proxyUrl).origin).toString()
  return async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' })
    if (response.status === 404) return []
    if (!response.ok) throw new SignatureListError(`${url}: HTTP ${response.status}`)
    return parseSignatureList(await response.text(), url)
  }
}

export interface SignatureKeeper {
  /** the signatures that hold for `root`: fetched and checked once per root */
  forRoot(root: RootState): Promise<HeldSignatures>
}

export interface SignatureKeeperOptions {
  source: SignatureSource | null
  r: string | null
  t: 'prod' | 'dev'
  log: Logger
}

/**
 * Fetches at boot and at every new root (the parent may have been handed new releases
 * since), checks against that root's PCRs. A fetch that fails keeps the last list: the
 * PCRs it was checked against do not change while the enclave runs, and it is checked again.
 */
export function createSignatureKeeper(opts: SignatureKeeperOptions): SignatureKeeper {
  let last: object[] = []
  let cached: { rootId: string; held: Promise<HeldSignatures> } | null = null
  const load = async (root: RootState): Promise<HeldSignatures> => {
    if (opts.source === null) return NO_SIGNATURES
    try {
      last = await opts.source()
    } catch (err) {
      opts.log.warn('signatures unavailable; keeping the last list', { error: errorText(err), kept: last.length })
    }
    const held = await acceptSignatures(last, { pcrs: root.attestation.pcrs, r: opts.r, t: opts.t }, opts.log)
    opts.log.info('signatures carried', {
      build: held.build === null ? null : npub(held.build.pubkey),
      instance: held.instance === null ? null : npub(held.instance.pubkey),
      releases: held.releases.map((e) => npub(e.pubkey)),
    })
    return held
  }
  return {
    forRoot(root) {
      if (cached === null || cached.rootId !== root.event.id) cached = { rootId: root.event.id, held: load(root) }
      return cached.held
    },
  }
}
