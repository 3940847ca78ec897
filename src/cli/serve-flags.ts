// serve's flags: the table parseArgs reads, and the checks that need nothing but the flags
// (contradictions, dev-only flags, numbers, the proxy URL). This module loads only light
// ones, so a usage error comes out before serve loads the service, the NSM or the relays.
import { resolve } from 'node:path'
import { OPERATOR_FILE, UPGRADE_FILE } from '../measured-files.js'
import { defaultStateDir } from '../nsm/state-dir.js'
import { budgetAt, DEFAULT_BUDGETS, MAX_POW_BITS, type ServiceBudgets } from '../service/limits.js'
import { CliError } from './exit.js'

export const SERVE_OPTIONS = {
  dev: { type: 'boolean' },
  relays: { type: 'string' },
  relay: { type: 'string', multiple: true },
  'embedded-relay': { type: 'boolean' },
  'embedded-port': { type: 'string' },
  'health-port': { type: 'string' },
  'state-dir': { type: 'string' },
  t: { type: 'string' },
  proxy: { type: 'string' },
  margin: { type: 'string' },
  name: { type: 'string' },
  about: { type: 'string' },
  picture: { type: 'string' },
  rate: { type: 'string' },
  burst: { type: 'string' },
  budget: { type: 'string' },
  'attest-budget': { type: 'string' },
  'lookup-budget': { type: 'string' },
  pow: { type: 'string' },
  'max-request-bytes': { type: 'string' },
  'leaf-lifetime': { type: 'string' },
  operator: { type: 'string' },
  repo: { type: 'string' },
  'parent-signatures': { type: 'boolean' },
  signatures: { type: 'string' },
  'sim-instance-id': { type: 'string' },
  'sim-builder-cert': { type: 'string' },
  'upgrade-policy': { type: 'string' },
  'kms-key': { type: 'string' },
  'kms-region': { type: 'string' },
  'kms-endpoint': { type: 'string' },
  parent: { type: 'string' },
  'embedded-kms': { type: 'boolean' },
  'new-identity': { type: 'string' },
  'upgrade-from': { type: 'string' },
} as const

type StringFlag = { [K in keyof typeof SERVE_OPTIONS]: (typeof SERVE_OPTIONS)[K]['type'] extends 'string' ? K : never }[keyof typeof SERVE_OPTIONS]
type BooleanFlag = Exclude<keyof typeof SERVE_OPTIONS, StringFlag>

/** What parseArgs gives for SERVE_OPTIONS. */
export type ServeValues = Partial<Record<Exclude<StringFlag, 'relay'>, string> & Record<BooleanFlag, boolean>> & { relay?: string[] }

/** The flags checked, with their defaults; `values` keeps the raw ones for the later groups. */
export interface ServeFlags {
  values: ServeValues
  dev: boolean
  t: 'prod' | 'dev'
  healthPort: number
  embeddedPort: number
  marginSec: number
  leafLifetimeSec: number | undefined
  rate: number
  burst: number
  budgets: Partial<ServiceBudgets>
  pow: number
  maxRequestBytes: number
  proxy: string | undefined
  stateDir: string
}

const DEFAULT_HEALTH_PORT = 8765
const DEFAULT_EMBEDDED_PORT = 7777

function intOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) throw new CliError(`--${name}: expected a whole number from ${min} to ${max}, got '${value}'`)
  return Number(value)
}

function numberOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`--${name}: expected a positive number, got '${value}'`)
  return n
}

// Checked here so a typo is a usage error at start, not an "internal error" from the pool
// after the attestation was already made (or, for another scheme, a proxy silently misused).
function checkProxy(value: string, source: string): void {
  let url: URL | null = null
  try {
    url = new URL(value)
  } catch {
    url = null
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    // The value is not echoed: a proxy URL may carry a password.
    const got = url === null ? 'not a URL' : `scheme ${url.protocol}`
    throw new CliError(`${source}: expected an HTTP CONNECT proxy URL like http://127.0.0.1:1080 (${got})`)
  }
}

/** Flags that contradict each other, or that only the simulator may take. */
function checkCombinations(v: ServeValues, dev: boolean): void {
  if (v.t !== undefined && v.t !== 'prod' && v.t !== 'dev') throw new CliError(`--t: expected prod or dev, got '${v.t}'`)
  if (v['embedded-relay'] === true && !dev) throw new CliError('--embedded-relay is for development: use it with --dev')
  if (v['leaf-lifetime'] !== undefined && !dev) throw new CliError('--leaf-lifetime only applies to the simulator (--dev)')
  // In an enclave the operator must be the measured one: a flag is chosen by the host.
  if (v.operator !== undefined && !dev) throw new CliError(`--operator only applies in dev (--dev): an enclave's operator is ${OPERATOR_FILE}, measured into PCR2`)
  if (v['upgrade-policy'] !== undefined && !dev) throw new CliError(`--upgrade-policy only applies in dev (--dev): an enclave's policy is ${UPGRADE_FILE}, measured into PCR2`)
  if (v.relay !== undefined && v.relays !== undefined) throw new CliError('give --relays FILE or --relay URL..., not both')
  for (const flag of ['signatures', 'sim-instance-id', 'sim-builder-cert'] as const) {
    // in an enclave the signatures come from the parent and PCR4/PCR8 from the hardware
    if (v[flag] !== undefined && !dev) throw new CliError(`--${flag} only applies in dev (--dev)`)
  }
}

function budgetsOf(v: ServeValues): Partial<ServiceBudgets> {
  return {
    ...(v.budget === undefined ? {} : { requests: budgetAt(DEFAULT_BUDGETS.requests, numberOption('budget', v.budget, 0)) }),
    ...(v['attest-budget'] === undefined ? {} : { expensive: budgetAt(DEFAULT_BUDGETS.expensive, numberOption('attest-budget', v['attest-budget'], 0)) }),
    ...(v['lookup-budget'] === undefined ? {} : { lookups: budgetAt(DEFAULT_BUDGETS.lookups, numberOption('lookup-budget', v['lookup-budget'], 0)) }),
  }
}

/** The proxy from --proxy, else $NEC01_PROXY (empty: none), checked. */
function proxyOf(v: ServeValues): string | undefined {
  const proxy = v.proxy ?? (process.env.NEC01_PROXY === '' ? undefined : process.env.NEC01_PROXY)
  if (proxy !== undefined) checkProxy(proxy, v.proxy !== undefined ? '--proxy' : 'NEC01_PROXY')
  return proxy
}

/** Everything that needs only the flags, in the order a person fixes them. Throws CliError. */
export function checkServeFlags(v: ServeValues): ServeFlags {
  const dev = v.dev === true
  checkCombinations(v, dev)
  const healthPort = intOption('health-port', v['health-port'], DEFAULT_HEALTH_PORT, 0, 65535)
  const embeddedPort = intOption('embedded-port', v['embedded-port'], DEFAULT_EMBEDDED_PORT, 0, 65535)
  const marginSec = intOption('margin', v.margin, 3600, 0, 86400)
  const leafLifetimeSec = v['leaf-lifetime'] === undefined ? undefined : intOption('leaf-lifetime', v['leaf-lifetime'], 10800, 60, 86400)
  const rate = numberOption('rate', v.rate, 1)
  const burst = intOption('burst', v.burst, 10, 1, 100000)
  const budgets = budgetsOf(v)
  const pow = intOption('pow', v.pow, 0, 0, MAX_POW_BITS)
  const maxRequestBytes = intOption('max-request-bytes', v['max-request-bytes'], 64 * 1024, 1024, 16 * 1024 * 1024)
  const proxy = proxyOf(v)
  const t = (v.t as 'prod' | 'dev' | undefined) ?? (dev ? 'dev' : 'prod')
  const stateDir = resolve(v['state-dir'] ?? defaultStateDir())
  return { values: v, dev, t, healthPort, embeddedPort, marginSec, leafLifetimeSec, rate, burst, budgets, pow, maxRequestBytes, proxy, stateDir }
}
