// serve's configuration beyond the flags themselves: the NEC flags, the relays, the operator,
// the upgrade policy, the ports, the sealing flags and --upgrade-from, read and checked in that
// order before anything starts. Loaded by serve once the flags alone are known to be right.
import { errorText } from '../../nec01/errors.js'
import { packageFile } from '../files.js'
import { ConfigError, DEFAULT_RELAYS_FILE, loadRelayConfig, relaysFromUrls, type RelayEntry } from '../relays/config.js'
import { OPERATOR_FILE, UPGRADE_FILE } from '../measured-files.js'
import { loadKmsSettings } from '../service/kms-config.js'
import { loadOperatorFile, OperatorConfigError, parseOperatorKey } from '../service/operator-config.js'
import { checkPolicyFor, loadUpgradeFile, UpgradePolicyError, type UpgradePolicy } from '../upgrade/policy.js'
import { CliError } from './exit.js'
import { checkSealingFlags, type SealingFlags } from './sealing.js'
import { serveNecOptions, type ServeNecOptions } from './serve-necs.js'
import type { ServeFlags, ServeValues } from './serve-flags.js'
import { checkPorts, embeddedPortUse, healthPortUse } from './serve-ports.js'
import { checkUpgradeFrom } from './upgrade-from.js'

export interface ServeConfig {
  signed: ServeNecOptions
  /** --relay, else the relays file (none with --embedded-relay alone): the embedded relay comes beside them */
  relays: RelayEntry[]
  /** the operator's hex key, or null: operator commands are refused */
  operator: string | null
  upgradePolicy: UpgradePolicy | null
  sealingFlags: SealingFlags
  /** the holder's hex key with --upgrade-from */
  upgradeFrom: string | undefined
}

/** --relay URL..., else --relays FILE or relays.json unless the embedded relay is all there is. */
function readRelays(v: ServeValues): RelayEntry[] {
  try {
    if (v.relay !== undefined) return relaysFromUrls(v.relay).relays
    return v['embedded-relay'] === true ? [] : loadRelayConfig(v.relays ?? DEFAULT_RELAYS_FILE).relays
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message)
    throw err
  }
}

/** --operator in dev, else operator.json beside the package. */
function readOperator(v: ServeValues): string | null {
  try {
    return v.operator !== undefined ? parseOperatorKey(v.operator) : loadOperatorFile(packageFile(OPERATOR_FILE)).operator
  } catch (err) {
    if (err instanceof OperatorConfigError) throw new CliError(err.message)
    throw err
  }
}

/** upgrade.json beside the package (or --upgrade-policy in dev); null: the key never moves. */
function readUpgradePolicy(file: string | undefined, t: 'prod' | 'dev'): UpgradePolicy | null {
  try {
    const policy = loadUpgradeFile(file ?? packageFile(UPGRADE_FILE))
    if (policy !== null) checkPolicyFor(policy, t)
    return policy
  } catch (err) {
    if (err instanceof UpgradePolicyError) throw new CliError(err.message)
    throw err
  }
}

/** The sealing flags, beside the "kms" member of the measured operator.json. */
function sealingFlagsOf(flags: ServeFlags): SealingFlags {
  const { values: v, dev, proxy, stateDir } = flags
  let measured
  try {
    measured = loadKmsSettings(packageFile(OPERATOR_FILE), OPERATOR_FILE)
  } catch (err) {
    throw new CliError(errorText(err))
  }
  const given = { kmsKey: v['kms-key'], kmsRegion: v['kms-region'], kmsEndpoint: v['kms-endpoint'], parent: v.parent, newIdentity: v['new-identity'], proxy }
  const defined = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined)) as Partial<SealingFlags>
  return { dev, embeddedKms: v['embedded-kms'] === true, stateDir, measured, ...defined }
}

/** Reads and checks everything serve needs before it starts. Throws CliError. */
export async function checkServeConfig(flags: ServeFlags): Promise<ServeConfig> {
  const v = flags.values
  const signed = serveNecOptions(v, flags.proxy)
  const relays = readRelays(v)
  const operator = readOperator(v)
  const upgradePolicy = readUpgradePolicy(v['upgrade-policy'], flags.t)
  const health = healthPortUse(flags.healthPort)
  await checkPorts(v['embedded-relay'] === true ? [embeddedPortUse(flags.embeddedPort), health] : [health])
  const sealingFlags = sealingFlagsOf(flags)
  checkSealingFlags(sealingFlags)
  const upgradeFrom = checkUpgradeFrom(v['upgrade-from'], {
    dev: flags.dev,
    sealed: sealingFlags.embeddedKms || (sealingFlags.kmsKey ?? sealingFlags.measured?.key) !== undefined,
    signatures: signed.source !== undefined,
  })
  return { signed, relays, operator, upgradePolicy, sealingFlags, upgradeFrom }
}
