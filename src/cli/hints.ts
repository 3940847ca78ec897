// What to do next when a verification fails for a reason the command line can fix: a flag
// that was left out. Each hint is read from the result and the flags given, never guessed
// from wording alone; a result that fails for any other reason gets none.
import { homedir } from 'node:os'
import { isNotChecked } from '../../nec01/result.js'
import type { VerifyResult } from '../../nec01/types.js'
import { defaultStateDir, simulatorRootPem } from '../nsm/state-dir.js'
import type { NecTrustValues } from './nec-trust.js'
import type { TrustValues } from './trust.js'

/** The simulator's root certificate names itself so (src/nsm/pki.ts): no AWS root does. */
const SIMULATOR_ROOT_NAME = 'nec01 simulated NSM root'

/** Where `nec01 serve --dev` keeps the simulator's root, as its banner prints it, with ~ for home. */
export function simulatorRootPath(): string {
  const home = homedir()
  const path = simulatorRootPem(defaultStateDir())
  return path.startsWith(`${home}/`) ? `~${path.slice(home.length)}` : path
}

function failedCheck(result: VerifyResult, id: string): boolean {
  return result.checks.some((c) => c.id === id && !c.ok && !isNotChecked(c))
}

/** One line per flag that would change this verdict, for the human output. */
export function hintsFor(result: VerifyResult, values: TrustValues & NecTrustValues): string[] {
  if (result.valid) return []
  const hints: string[] = []
  const root = result.checks.find((c) => c.id === 'root' && !c.ok)
  if (values.root === undefined && root?.detail.includes(SIMULATOR_ROOT_NAME) === true) {
    hints.push(`this document comes from the NSM simulator (a dev service), not AWS: add --root ${simulatorRootPath()}`)
  }
  const codeNamed = values.pcr !== undefined || values.pcrs !== undefined || values['any-pcrs'] === true || values['release-signers'] !== undefined || values.builder !== undefined
  // not checked counts too: the next run, with the root fixed, would fail on it
  if (!codeNamed && result.checks.some((c) => c.id === 'pcrs' && !c.ok)) {
    hints.push('no expected PCRs given: pass --pcrs FILE or --pcr N=HEX (the build you trust), or --any-pcrs to accept any image')
  }
  const t = result.event?.tags.find((tag) => tag[0] === 't')?.[1]
  if (values.expect === undefined && t === 'dev' && failedCheck(result, 't')) hints.push('a dev service (t=dev): add --expect dev')
  return hints
}
