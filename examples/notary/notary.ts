// A notary on nec01: `notarize <statement>` answers with the statement's SHA-256. The reply is
// signed by the service key, which only the attested enclave holds, and carries tee_root: a
// client that verifies it knows an enclave running this code saw the statement and computed
// that digest, at the reply's created_at. It imports nec01 only through its public surface.
//
//   npm run example:notary              dev: NSM simulator and a relay on ws://127.0.0.1:7777
//   node notary.js --enclave            in a Nitro Enclave (see docs/apps.md)
//
// NOTARY_RELAY_PORT / NOTARY_HEALTH_PORT move the embedded relay and the health endpoint
// (0 picks a free port).
import { createHash } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { CommandError, launchService, type CommandSpec, type LaunchedService } from 'nec01/service'

/** DM text "notarize <statement>" arrives as { text }, a JSON-RPC call as { statement }. */
function statementOf(params: unknown): string {
  const p = typeof params === 'object' && params !== null ? (params as { statement?: unknown; text?: unknown }) : {}
  const statement = p.statement ?? p.text
  if (typeof statement !== 'string' || statement === '') throw new CommandError('INVALID_REQUEST', 'usage: notarize <statement> (JSON-RPC: params { statement })')
  return statement
}

export const notarize: CommandSpec = {
  summary: 'the SHA-256 of your statement (UTF-8), in a reply signed by the enclave',
  example: 'notarize I, Alice, owe Bob 5000 sats',
  handler: async (req) => {
    const statement = statementOf(req.params)
    const sha256 = createHash('sha256').update(statement, 'utf8').digest('hex')
    const bytes = Buffer.byteLength(statement, 'utf8')
    return { result: { sha256, bytes }, text: `sha256: ${sha256}\nbytes: ${bytes}` }
  },
}

export interface NotarySettings {
  mode: 'dev' | 'enclave'
  /** the embedded relay's port (dev only); 0 picks a free one */
  relayPort: number
  /** health endpoint on 127.0.0.1; enclave/start.sh bridges 8765 to the parent */
  healthPort: number
}

function port(name: string, fallback: number): number {
  const value = process.env[name]
  if (value === undefined || value === '') return fallback
  if (!/^[0-9]{1,5}$/.test(value) || Number(value) > 65535) throw new Error(`${name}: expected a port from 0 to 65535, got '${value.slice(0, 20)}'`)
  return Number(value)
}

/** The command line and environment; throws Error with a one-line usage message. */
export function readSettings(args: string[]): NotarySettings {
  if (args.some((a) => a !== '--enclave')) throw new Error('usage: notary.js [--enclave]  (env: NOTARY_RELAY_PORT, NOTARY_HEALTH_PORT)')
  return { mode: args.includes('--enclave') ? 'enclave' : 'dev', relayPort: port('NOTARY_RELAY_PORT', 7777), healthPort: port('NOTARY_HEALTH_PORT', 8765) }
}

/** The notary in dev (simulator, embedded relay) or in an enclave (/dev/nsm, relays.json). */
export function startNotary(settings: NotarySettings): Promise<LaunchedService> {
  const { mode, healthPort } = settings
  const commands = { notarize }
  // In an enclave, enclave/start.sh bridges 127.0.0.1:1080 to the parent's CONNECT proxy.
  if (mode === 'enclave') return launchService({ mode, commands, name: 'notary', healthPort, proxy: 'http://127.0.0.1:1080' })
  return launchService({ mode, commands, name: 'notary', healthPort, embeddedRelayPort: settings.relayPort })
}

function banner(notary: LaunchedService): string {
  const { service, devRoot } = notary
  const relay = notary.embeddedRelayUrl ?? notary.relays[0]?.url ?? ''
  return [
    `notary — ${devRoot !== null ? 'DEV MODE: simulated NSM, not an enclave' : 'Nitro Enclave'} (t=${service.t})`,
    `npub:    ${service.identity.npub}`,
    `relays:  ${notary.relays.map((r) => r.url).join(' ')}`,
    ...(devRoot !== null ? [`root:    ${devRoot.pemPath}`] : []),
    `health:  http://127.0.0.1:${service.healthPort}/health`,
    `try:     npx nec01 dm ${service.identity.npub} 'notarize hello world' --relay ${relay} ${notary.clientTrustFlags}`,
  ].join('\n')
}

async function main(): Promise<number> {
  let settings: NotarySettings
  try {
    settings = readSettings(process.argv.slice(2))
  } catch (err) {
    console.error(`notary: ${err instanceof Error ? err.message : String(err)}`)
    return 2
  }
  const notary = await startNotary(settings)
  // Listen before the banner: whoever reads it may signal at once.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  console.log(banner(notary))
  await stopped
  await notary.close()
  return 0
}

// Run when started as a program, not when imported.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`notary: ${err instanceof Error ? err.message : String(err)}`)
      process.exit(1)
    },
  )
}
