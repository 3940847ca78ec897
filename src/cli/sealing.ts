// serve's sealing flags → the service's SealingConfig: which KMS key, which KMS (AWS through
// the parent's proxy, or the stand-in), who keeps the blob (the parent, or a file in the
// state directory in dev), and the banner lines that say where the identity came from.
import { errorText } from '../../nec01/errors.js'
import { join } from 'node:path'
import type { EmbeddedKms } from '../embedded/kms.js'
import type { KmsCredentials } from '../kms/client.js'
import { kmsKeyProblem, regionOfKeyArn } from '../kms/key-id.js'
import type { NsmSimulator } from '../nsm/simulator.js'
import { DEFAULT_SEALED_KEY_PORT, SEALED_KEY_FILE_NAME, sealedKeyFile } from '../parent/sealed.js'
import type { KmsSettings } from '../service/kms-config.js'
import { fileKeyHolder, parentLink } from '../service/sealed-holders.js'
import type { IdentityOrigin, SealedKeyHolder, SealingConfig } from '../service/sealed-identity.js'
import { CliError } from './exit.js'

export interface SealingFlags {
  dev: boolean
  kmsKey?: string
  kmsRegion?: string
  kmsEndpoint?: string
  embeddedKms: boolean
  parent?: string
  newIdentity?: string
  proxy?: string
  stateDir: string
  /** the "kms" member of the measured operator.json */
  measured: KmsSettings | null
}

export interface PreparedSealing {
  config: SealingConfig | undefined
  /** lines for serve's banner, once the identity exists */
  banner(origin: IdentityOrigin): string[]
  close(): Promise<void>
}

const MAX_REASON = 500

/** The AWS SDK's documented switch for its NodeVersionSupportWarning, and the Node it asks for. */
const SDK_NODE_WARNING_ENV = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'
const SDK_NODE_MAJOR = 22

/**
 * In dev, the SDK's multi-line warning about this Node on every sealed start becomes one
 * banner line (the returned one), through the SDK's own switch for exactly that warning.
 * An enclave's log keeps the SDK's text; a switch the user set is left as it is.
 */
function shortSdkNodeWarning(dev: boolean): string | null {
  const major = Number(process.versions.node.split('.')[0])
  if (!dev || major >= SDK_NODE_MAJOR || process.env[SDK_NODE_WARNING_ENV] !== undefined) return null
  process.env[SDK_NODE_WARNING_ENV] = 'true'
  return `node:    AWS SDK: Node ${major} support ends with its releases after the first week of January 2027; move to Node ${SDK_NODE_MAJOR}`
}

function httpUrl(value: string, flag: string): void {
  let url: URL | null = null
  try {
    url = new URL(value)
  } catch {
    url = null
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') throw new CliError(`${flag}: expected an http(s) URL, got '${value.slice(0, 100)}'`)
}

/** Contradictions and bad values, before anything starts. Throws CliError. */
export function checkSealingFlags(f: SealingFlags): void {
  if (f.newIdentity !== undefined) {
    const reason = f.newIdentity.trim()
    if (reason === '') throw new CliError('--new-identity needs a reason, which is logged: --new-identity "why the old npub is given up"')
    if (reason.length > MAX_REASON) throw new CliError(`--new-identity: the reason is over ${MAX_REASON} characters`)
  }
  if (f.embeddedKms && !f.dev) throw new CliError('--embedded-kms is for development: use it with --dev')
  if (f.embeddedKms && (f.kmsKey !== undefined || f.kmsEndpoint !== undefined || f.parent !== undefined)) throw new CliError('--embedded-kms runs its own key and keeps the sealed key in the state directory: no --kms-key, --kms-endpoint or --parent with it')
  if (f.kmsEndpoint !== undefined && !f.dev) throw new CliError('--kms-endpoint is for development and tests (--dev): an enclave talks to AWS KMS over TLS')
  if (f.kmsEndpoint !== undefined) httpUrl(f.kmsEndpoint, '--kms-endpoint')
  if (f.parent !== undefined) httpUrl(f.parent, '--parent')
  if (f.kmsKey !== undefined) {
    const problem = kmsKeyProblem(f.kmsKey)
    if (problem !== null) throw new CliError(`--kms-key: ${problem}`)
  }
  const key = f.kmsKey ?? (f.embeddedKms ? undefined : f.measured?.key)
  if (key === undefined && !f.embeddedKms) {
    for (const [flag, value] of [['--kms-region', f.kmsRegion], ['--kms-endpoint', f.kmsEndpoint], ['--parent', f.parent], ['--new-identity', f.newIdentity]] as const) {
      if (value !== undefined) throw new CliError(`${flag} applies to a sealed identity: give --kms-key${f.dev ? ' or --embedded-kms' : ''}`)
    }
  }
  if (key !== undefined && f.dev && f.kmsEndpoint === undefined) throw new CliError('with --dev the NSM is simulated and only the KMS stand-in accepts it: give --kms-endpoint, or use --embedded-kms')
}

function holderFor(f: SealingFlags): { holder: SealedKeyHolder; credentials: KmsCredentials | null } {
  if (f.parent !== undefined || !f.dev) {
    const link = parentLink({ url: f.parent ?? `http://127.0.0.1:${DEFAULT_SEALED_KEY_PORT}`, ...(f.proxy === undefined ? {} : { proxy: f.proxy }) })
    return link
  }
  return { holder: fileKeyHolder(sealedKeyFile(join(f.stateDir, SEALED_KEY_FILE_NAME))), credentials: null }
}

function originLine(origin: IdentityOrigin, config: SealingConfig | undefined): string {
  if (config === undefined || origin === 'ephemeral') return 'identity: ephemeral: not sealed, a new npub every start (docs/identity.md)'
  const where = `KMS key ${config.keyId}, sealed key kept by ${config.holder.where}`
  return origin === 'unsealed' ? `identity: unsealed: the same npub as before (${where})` : `identity: new, sealed (${where})`
}

/** npm start's stand-in, its dev key and the blob in the state directory. */
async function embeddedSealing(f: SealingFlags, simulator: NsmSimulator | null, reason: string | undefined): Promise<{ config: SealingConfig; embedded: EmbeddedKms }> {
  if (simulator === null) throw new CliError('--embedded-kms needs the simulator (--dev)')
  const { DEV_CREDENTIALS, startEmbeddedKms } = await import('../embedded/kms.js')
  const { createKmsClient } = await import('../kms/client.js')
  let embedded: EmbeddedKms
  try {
    embedded = await startEmbeddedKms({ stateDir: f.stateDir, simulator })
  } catch (error) {
    throw new CliError(`cannot start the embedded KMS stand-in: ${errorText(error).split('\n')[0] ?? ''}`)
  }
  const kms = createKmsClient({ region: embedded.region, endpoint: embedded.endpoint, credentials: DEV_CREDENTIALS })
  const holder = fileKeyHolder(sealedKeyFile(join(f.stateDir, SEALED_KEY_FILE_NAME)))
  return { config: { kms, keyId: embedded.keyArn, region: embedded.region, holder, ...(reason === undefined ? {} : { newIdentity: reason }) }, embedded }
}

/** A KMS key from the flags or operator.json: AWS through the proxy, or a stand-in in dev. */
async function outsideSealing(f: SealingFlags, keyId: string, reason: string | undefined): Promise<SealingConfig> {
  const region = f.kmsRegion ?? regionOfKeyArn(keyId) ?? f.measured?.region ?? null
  if (region === null) throw new CliError('--kms-region is needed with a bare key id')
  const { createKmsClient } = await import('../kms/client.js')
  const { DEV_CREDENTIALS } = await import('../embedded/kms.js')
  const { holder, credentials } = holderFor(f)
  const kms = createKmsClient({
    region,
    ...(f.kmsEndpoint === undefined ? {} : { endpoint: f.kmsEndpoint }),
    ...(f.proxy === undefined ? {} : { proxy: f.proxy }),
    // with no parent, only in dev: checkSealingFlags demands a stand-in there
    credentials: credentials ?? DEV_CREDENTIALS,
  })
  return { kms, keyId, region, holder, ...(reason === undefined ? {} : { newIdentity: reason }) }
}

/** Builds the SealingConfig (and starts the embedded stand-in). Throws CliError. */
export async function prepareSealing(f: SealingFlags, simulator: NsmSimulator | null): Promise<PreparedSealing> {
  const reason = f.newIdentity?.trim()
  const keyId = f.kmsKey ?? f.measured?.key
  // AWS's SDK and the stand-in load only for a sealed identity: a plain serve starts without them.
  let embedded: EmbeddedKms | null = null
  let config: SealingConfig | undefined
  const sdkWarning = f.embeddedKms || keyId !== undefined ? shortSdkNodeWarning(f.dev) : null
  if (f.embeddedKms) ({ config, embedded } = await embeddedSealing(f, simulator, reason))
  else if (keyId !== undefined) config = await outsideSealing(f, keyId, reason)
  return {
    config,
    banner: (origin) => [
      originLine(origin, config),
      ...(reason !== undefined && origin === 'new' ? [`reason:  ${reason}  (the old sealed key is kept aside, not deleted)`] : []),
      ...(embedded?.created === true ? [`dev:     a new dev KMS key in the stand-in (${join(f.stateDir, 'kms-standin')}; not AWS)`] : []),
      ...(embedded?.repointed != null
        ? [`dev:     the simulated PCR0 moved (the code changed): the dev KMS key's policy was RE-POINTED at the new PCR0 so this build can unseal. Production never does this (docs/identity.md)`]
        : []),
      ...(sdkWarning === null ? [] : [sdkWarning]),
    ],
    async close() {
      config?.kms.destroy()
      await embedded?.close()
    },
  }
}
