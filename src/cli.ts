#!/usr/bin/env node
// `nec01` entry point: dispatches to src/commands/<name>.ts. Commands are loaded lazily so
// `nec01 verify` never loads the service, the relay or the NSM addon.
import { CliError, closestFlag, EXIT_USAGE, type CommandMain } from './cli/exit.js'
import { VERSION } from './version.js'
import { errorText } from '../nec01/errors.js'

interface CommandEntry {
  summary: string
  load: () => Promise<{ main: CommandMain }>
}

const COMMANDS: Record<string, CommandEntry> = {
  serve: { summary: 'run the attested Nostr service (--dev: simulated NSM)', load: () => import('./commands/serve.js') },
  verify: { summary: 'verify a kind:23793 event, a tee_root carrier or a raw attestation', load: () => import('./commands/verify.js') },
  dm: { summary: 'DM an attested service, wait for the reply and verify its tee_root', load: () => import('./commands/dm.js') },
  attest: { summary: 'get a fresh attestation bound to your nonce and data, and verify it', load: () => import('./commands/attest.js') },
  fetch: { summary: "fetch a service's announcement, profile and notes and verify them (with who built, launched, released)", load: () => import('./commands/fetch.js') },
  parent: { summary: 'the parent instance proxy: the enclave\'s only way out, to allowed relays', load: () => import('./commands/parent.js') },
  'builder-cert': { summary: 'make the P-384 key and certificate a builder signs the enclave image with (NEC-03)', load: () => import('./commands/builder-cert.js') },
  sign: { summary: 'sign a build (23794), launch (23795) or release (63794) signature, with a key or a bunker', load: () => import('./commands/sign.js') },
}

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length))
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  return [
    'nec01 — AWS Nitro Enclave attestations for Nostr (NEC-01)',
    '',
    'usage: nec01 <command> [options]   (nec01 help <command> for its options; nec01 version)',
    '',
    'commands:',
    ...lines,
  ].join('\n')
}

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    // a usage error: the text goes where errors go, so `nec01 | cmd` sees nothing
    console.error(usage())
    return EXIT_USAGE
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    // `nec01 help verify` is `nec01 verify --help`
    const topic = rest[0]
    if (topic === undefined) {
      console.log(usage())
      return 0
    }
    if (rest.length > 1) throw new CliError(`help takes one command, got ${rest.length} (try: nec01 help verify)`)
    return (await command(topic).load()).main(['--help'])
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    if (rest.length > 0) throw new CliError(`${name} takes no arguments`)
    console.log(`nec01 ${VERSION}`)
    return 0
  }
  const { main } = await command(name).load()
  return main(rest)
}

function command(name: string): CommandEntry {
  const entry = COMMANDS[name]
  if (entry !== undefined) return entry
  const near = closestFlag(name, Object.keys(COMMANDS))
  throw new CliError(`unknown command '${name}'${near === null ? '' : `: did you mean ${near}?`} (try: nec01 --help)`)
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    // One line for the user, never a stack trace; NEC01_DEBUG=1 shows the stack.
    if (err instanceof CliError) {
      console.error(`nec01: ${err.message}`)
      process.exitCode = err.exitCode
      return
    }
    const message = errorText(err)
    console.error(`nec01: internal error: ${message.split('\n')[0]}`)
    if (process.env.NEC01_DEBUG === '1' && err instanceof Error) console.error(err.stack)
    process.exitCode = EXIT_USAGE
  },
)
