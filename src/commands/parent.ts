// nec01 parent: runs on the EC2 parent instance and gives the enclave its only way out,
// a CONNECT proxy to the configured relays (the vsock bridge feeds it; docs/deploy.md).
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import { checkArguments, CliError, EXIT_OK } from '../cli/exit.js'
import {
  allowlistFromRelays,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_TUNNELS,
  DEFAULT_PROXY_PORT,
  formatHostPort,
  jsonLineLogger,
  parseAllowEntry,
  ParentProxyError,
  startParentProxy,
  type AllowEntry,
  type ParentProxy,
} from '../parent/proxy.js'
import { MAX_SIGNATURES_BYTES, parseSignatureList, SIGNATURES_PATH } from '../parent/signatures.js'
import { ConfigError, DEFAULT_RELAYS_FILE, loadRelayConfig } from '../relays/config.js'
import { errorText } from '../../nec01/errors.js'

import { FileReadError, readBoundedFile } from '../files.js'

export const USAGE = `usage: nec01 parent [--relays FILE] [--allow HOST:PORT]... [--port N] [--host ADDR]
                    [--max-tunnels N] [--idle SECONDS] [--signatures FILE]

Runs on the parent EC2 instance: an HTTP CONNECT proxy that lets the enclave reach the
relays of FILE (and the --allow targets) and nothing else. TLS stays end to end between
the enclave and the relay: this proxy can block a connection but never read or forge it.

options:
  --relays FILE       relay list (default: relays.json of this package); every ws:// and
                      wss:// URL in it becomes an allowed host:port
  --allow HOST:PORT   also allow this target (IPv6 as [addr]:port); repeatable
  --port N            listen port (default ${DEFAULT_PROXY_PORT}; 0 = any free port)
  --host ADDR         listen address (default 127.0.0.1: only the vsock bridge should reach it)
  --max-tunnels N     concurrent tunnels; more are refused with 503 (default ${DEFAULT_MAX_TUNNELS})
  --idle SECONDS      close a tunnel idle this long in both directions (default ${DEFAULT_IDLE_TIMEOUT_MS / 1000})
  --signatures FILE   hand the enclave these builder, launcher and release signatures (a
                      JSON array of events, read again at each request; a missing file is
                      an empty list) on GET ${SIGNATURES_PATH} (serve --parent-signatures)

Logs one JSON object per line on standard output (open, close, refuse). Runs until
SIGINT or SIGTERM; exits 0 on a clean shutdown.`

const OPTIONS = {
  relays: { type: 'string' },
  allow: { type: 'string', multiple: true },
  port: { type: 'string' },
  host: { type: 'string' },
  'max-tunnels': { type: 'string' },
  idle: { type: 'string' },
  signatures: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

export interface ParentSettings {
  relaysFile: string
  allow: AllowEntry[]
  host: string
  port: number
  maxTunnels: number
  idleTimeoutMs: number
  /** the signature list file, or null */
  signatures: string | null
}

function intOption(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback
  if (!/^[0-9]{1,10}$/.test(raw)) throw new CliError(`--${name} must be an integer ${min}..${max}, got '${raw}'`)
  const value = Number(raw)
  if (value < min || value > max) throw new CliError(`--${name} must be an integer ${min}..${max}, got '${raw}'`)
  return value
}

function idleOption(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_IDLE_TIMEOUT_MS
  const seconds = /^[0-9]{1,6}(?:\.[0-9]{1,3})?$/.test(raw) ? Number(raw) : NaN
  if (!(seconds >= 0.001 && seconds <= 86_400)) throw new CliError(`--idle must be a number of seconds 0.001..86400, got '${raw}'`)
  return Math.round(seconds * 1000)
}

function firstLine(err: unknown): string {
  const message = errorText(err)
  return message.split('\n')[0] ?? ''
}

/** Parses and checks the arguments; throws CliError (exit 2) with a one-line message. */
export function parseParentArgs(args: string[]): ParentSettings | 'help' {
  let values: { relays?: string; allow?: string[]; port?: string; host?: string; 'max-tunnels'?: string; idle?: string; signatures?: string; help?: boolean }
  checkArguments('parent', args, OPTIONS)
  try {
    ;({ values } = parseArgs({ args, options: OPTIONS, allowPositionals: false, strict: true }))
  } catch (err) {
    throw new CliError(`parent: ${firstLine(err)} (try: nec01 parent --help)`)
  }
  if (values.help === true) return 'help'
  const allow = (values.allow ?? []).map((raw) => {
    try {
      return parseAllowEntry(raw)
    } catch (err) {
      throw new CliError(firstLine(err))
    }
  })
  const host = values.host ?? '127.0.0.1'
  if (isIP(host) === 0 && host !== 'localhost') throw new CliError(`--host must be an IP address, got '${host}'`)
  return {
    relaysFile: values.relays ?? DEFAULT_RELAYS_FILE,
    allow,
    host,
    port: intOption('port', values.port, DEFAULT_PROXY_PORT, 0, 65535),
    maxTunnels: intOption('max-tunnels', values['max-tunnels'], DEFAULT_MAX_TUNNELS, 1, 65_536),
    idleTimeoutMs: idleOption(values.idle),
    signatures: values.signatures ?? null,
  }
}

/**
 * The list in FILE, read at each request so a new release signature needs no restart. A
 * missing file is no signatures (the unit may name one not written yet); a malformed one
 * throws, and the enclave gets a 503 and keeps what it had.
 */
function signatureFile(path: string): () => Promise<object[]> {
  return async () => {
    let text: string
    try {
      text = readBoundedFile(path, MAX_SIGNATURES_BYTES).toString('utf8')
    } catch (err) {
      if (err instanceof FileReadError && err.errno === 'ENOENT') return []
      throw err
    }
    return parseSignatureList(text, path)
  }
}

/** The allowlist of the settings: relays of the file, then --allow entries. */
export function parentAllowlist(settings: ParentSettings): AllowEntry[] {
  let relays: ReadonlyArray<{ url: string }>
  try {
    relays = loadRelayConfig(settings.relaysFile).relays
  } catch (err) {
    // ConfigError messages already start with the file name.
    throw new CliError(err instanceof ConfigError ? err.message : `--relays ${settings.relaysFile}: ${firstLine(err)}`)
  }
  let allow: AllowEntry[]
  try {
    allow = allowlistFromRelays(relays, settings.allow)
  } catch (err) {
    throw new CliError(`--relays ${settings.relaysFile}: ${firstLine(err)}`)
  }
  if (allow.length === 0) throw new CliError('nothing to allow: the relay list is empty and no --allow was given')
  return allow
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

export async function main(args: string[]): Promise<number> {
  const settings = parseParentArgs(args)
  if (settings === 'help') {
    console.log(USAGE)
    return EXIT_OK
  }
  const allow = parentAllowlist(settings)
  let proxy: ParentProxy
  try {
    proxy = await startParentProxy({
      host: settings.host,
      port: settings.port,
      allow,
      maxTunnels: settings.maxTunnels,
      idleTimeoutMs: settings.idleTimeoutMs,
      ...(settings.signatures === null ? {} : { signatures: signatureFile(settings.signatures) }),
      // JSON lines on stderr, as `nec01 serve` logs; stdout keeps the two human lines
      log: jsonLineLogger((line) => process.stderr.write(line)),
    })
  } catch (err) {
    if (err instanceof ParentProxyError) throw new CliError(err.message)
    throw err
  }
  if (!isLoopback(settings.host)) {
    console.error(`nec01 parent: warning: listening on ${settings.host}, not loopback: anyone who can reach it can tunnel to the allowed relays`)
  }
  const where = isIP(proxy.host) === 6 ? `[${proxy.host}]:${proxy.port}` : `${proxy.host}:${proxy.port}`
  const handing = settings.signatures === null ? '' : `; signatures from ${settings.signatures}`
  console.log(`nec01 parent: listening on ${where}, allowing ${allow.map(formatHostPort).join(', ')}${handing}`)

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
      resolve(sig)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
  await proxy.close()
  console.log(`nec01 parent: ${signal}, stopped`)
  return EXIT_OK
}
