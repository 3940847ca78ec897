// serve --upgrade-from NPUB: this build asks that holder for its key (docs/upgrades.md).
// The key must survive the restart that follows, so outside dev it needs a sealed identity;
// and the holder checks this build's release signatures, so they must be at hand.
import { RELEASE_KIND } from '../../nec01/kinds.js'
import { pubkeyHex } from '../../nec01/nostr.js'
import type { NostrEvent } from '../../nec01/types.js'
import { errorText } from '../../nec01/errors.js'
import type { SignatureSource } from '../service/signatures.js'
import { CliError } from './exit.js'

/** The holder's hex key, or undefined without the flag. Throws CliError. */
export function checkUpgradeFrom(value: string | undefined, o: { dev: boolean; sealed: boolean; signatures: boolean }): string | undefined {
  if (value === undefined) return undefined
  const holder = pubkeyHex(value)
  if (holder === null) throw new CliError(`--upgrade-from: expected the holder's npub (or hex key), got '${value.slice(0, 80)}'`)
  if (!o.dev && !o.sealed) throw new CliError('--upgrade-from needs a sealed identity outside dev (--kms-key, or "kms" in operator.json): a handed-over key that is not sealed would be lost at the next restart')
  if (!o.signatures) throw new CliError(`--upgrade-from needs this build's release signatures: --parent-signatures${o.dev ? ', or --signatures FILE' : ''}`)
  return holder
}

/** The release signatures (kind 63794) among the signatures this build was given. */
export async function releasesFrom(source: SignatureSource): Promise<NostrEvent[]> {
  let events: object[]
  try {
    events = await source()
  } catch (error) {
    throw new CliError(`--upgrade-from: cannot read the release signatures: ${errorText(error).split('\n')[0] ?? ''}`)
  }
  const releases = events.filter((e): e is NostrEvent => (e as { kind?: unknown }).kind === RELEASE_KIND)
  if (releases.length === 0) throw new CliError('--upgrade-from: no release signature (kind 63794) among the signatures given: the holder would refuse')
  return releases
}
