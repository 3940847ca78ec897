// nec01 sign: the NEC signatures people make about an enclave image or host. A builder
// signs the certificate the image was signed with (kind 23794, NEC-03), a launcher the EC2
// instance the enclave runs on (23795, NEC-04), a maintainer the PCRs of a release (63794,
// NEC-05). Each event is verified as a client would before it is printed.
import type { EventTemplate } from 'nostr-tools/pure'
import { buildBuilderSignature } from '../../nec01/build.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { buildLauncherSignature } from '../../nec01/launch.js'
import { verifyNecSignature } from '../../nec01/necs.js'
import { pcr4OfInstance, pcr8OfCertificate, PCR_HEX } from '../../nec01/pcr.js'
import { buildReleaseSignature } from '../../nec01/release.js'
import type { NecVerifyOptions, NostrEvent } from '../../nec01/types.js'
import { clientIdentity, clientRelays, openSession, parseTimeout } from '../cli/client.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { readInput } from '../cli/input.js'
import { openSigner, SIGNER_ARG_OPTIONS, SIGNER_USAGE, type SignerValues } from '../cli/signer.js'
import { readPcrFile } from '../cli/trust.js'
import { errorText } from '../../nec01/errors.js'

export const USAGE = `usage: nec01 sign build --cert FILE [--t prod|dev] [--repo URL] [--v VERSION] [signing key]
       nec01 sign launch --instance i-… | --pcr4 HEX [signing key]
       nec01 sign release PCRS.json --repo URL --t prod|dev [--publish [--relay URL]...] [signing key]

Signs a NEC signature event and prints it as one line of JSON on standard output:
  build    kind 23794 (NEC-03): you built the image signed with this certificate (PCR8);
           the certificate must name your npub (nec01 builder-cert)
  launch   kind 23795 (NEC-04): you run the enclave on this EC2 instance (PCR4)
  release  kind 63794 (NEC-05): you approve the image with these PCR0/1/2 (nitro-cli's
           build-enclave output, or build/pcrs.json of enclave/build.sh), from this repository

Hand build, launch and release events to the enclave with nec01 parent --signatures FILE
(one event per line, or a JSON array). Release events may also be published for clients
that look them up (nec01 fetch --release-signers).

  --cert FILE       build: the builder certificate (PEM or DER) the image was signed with
  --instance ID     launch: the EC2 instance id (i-0123456789abcdef0)
  --pcr4 HEX        launch: PCR4 itself, instead of the instance id
  --repo URL        the repository (r); required for release
  --t prod|dev      release: required; build: default prod
  --v VERSION       build: the package version built
  --content TEXT    a comment
  --publish         release: publish it to the relays (--relay, --relays FILE, or relays.json)
  --relay URL       relay to publish to; repeatable
  --relays FILE     relay list file
  --timeout S       seconds to wait for the relays (default 10)
${SIGNER_USAGE}

exit: 0 signed (and published to at least one relay), 1 the signer refused or no relay took
it, 2 usage`

const COMMON = {
  ...SIGNER_ARG_OPTIONS,
  repo: { type: 'string' },
  t: { type: 'string' },
  content: { type: 'string' },
} as const
type Common = SignerValues & { repo?: string; t?: string; content?: string }

/** What a subcommand asks to be signed, and how the result is checked. */
interface Request {
  template: EventTemplate
  /** the verifier's expectations: the PCRs the event must name, r and t */
  check: NecVerifyOptions
}

function tOption(value: string | undefined, fallback?: 'prod' | 'dev'): 'prod' | 'dev' {
  const t = value ?? fallback
  if (t === undefined) throw new CliError('--t: required (prod or dev)')
  if (t !== 'prod' && t !== 'dev') throw new CliError(`--t: expected prod or dev, got '${t}'`)
  return t
}

function repoOption(value: string | undefined, required: boolean): string | undefined {
  if (value === undefined) {
    if (required) throw new CliError('--repo: required (the repository URL the release is of)')
    return undefined
  }
  try {
    new URL(value)
  } catch {
    throw new CliError(`--repo: expected a repository URL, got '${value.slice(0, 80)}'`)
  }
  return value
}

function onlyPositionals(positionals: string[], count: number, what: string): void {
  if (positionals.length !== count) throw new CliError(`expected ${what} (see nec01 sign --help)`)
}

async function buildRequest(args: string[]): Promise<{ values: Common; request: Request } | null> {
  const parsed = parseCommandArgs('sign build', USAGE, args, { ...COMMON, cert: { type: 'string' }, v: { type: 'string' } })
  if (parsed === null) return null
  const { values, positionals } = parsed
  onlyPositionals(positionals, 0, 'no argument besides the options')
  if (values.cert === undefined) throw new CliError('--cert FILE: required (the certificate the image was signed with)')
  const t = tOption(values.t, 'prod')
  const r = repoOption(values.repo, false)
  const certificate = await readInput(values.cert, 64 * 1024)
  let template: EventTemplate
  try {
    template = buildBuilderSignature({
      certificate: isPem(certificate) ? new TextDecoder().decode(certificate) : certificate,
      t,
      ...(r === undefined ? {} : { r }),
      ...(values.v === undefined ? {} : { v: values.v }),
      ...(values.content === undefined ? {} : { content: values.content }),
    })
  } catch (err) {
    throw new CliError(`--cert ${values.cert}: ${errorText(err)}`)
  }
  const pcr8 = template.tags.find((tag) => tag[0] === 'PCR8')?.[1] ?? ''
  return { values, request: { template, check: { expectedPcrs: { 8: pcr8 }, expect: t, ...(r === undefined ? {} : { repo: r }) } } }
}

function isPem(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, 64)).includes('-----BEGIN')
}

async function launchRequest(args: string[]): Promise<{ values: Common; request: Request } | null> {
  const parsed = parseCommandArgs('sign launch', USAGE, args, { ...COMMON, instance: { type: 'string' }, pcr4: { type: 'string' } })
  if (parsed === null) return null
  const { values, positionals } = parsed
  onlyPositionals(positionals, 0, 'no argument besides the options')
  if ((values.instance === undefined) === (values.pcr4 === undefined)) throw new CliError('give --instance i-… or --pcr4 HEX (one of them)')
  let pcr4: string
  if (values.instance !== undefined) {
    if (!/^i-[0-9a-f]{8,17}$/.test(values.instance)) throw new CliError(`--instance: expected an EC2 instance id like i-0123456789abcdef0, got '${values.instance.slice(0, 40)}'`)
    pcr4 = bytesToHex(pcr4OfInstance(values.instance))
  } else {
    pcr4 = (values.pcr4 ?? '').toLowerCase()
    if (!PCR_HEX.test(pcr4)) throw new CliError('--pcr4: expected 96 hex characters')
  }
  const template = buildLauncherSignature({ pcr4, ...(values.content === undefined ? {} : { content: values.content }) })
  return { values, request: { template, check: { expectedPcrs: { 4: pcr4 }, expect: 'any' } } }
}

type ReleaseValues = Common & { publish?: boolean; relay?: string[]; relays?: string; timeout?: string }

async function releaseRequest(args: string[]): Promise<{ values: ReleaseValues; request: Request } | null> {
  const parsed = parseCommandArgs('sign release', USAGE, args, {
    ...COMMON,
    publish: { type: 'boolean' },
    relay: { type: 'string', multiple: true },
    relays: { type: 'string' },
    timeout: { type: 'string' },
  })
  if (parsed === null) return null
  const { values, positionals } = parsed
  onlyPositionals(positionals, 1, 'one PCRS.json (nitro-cli build-enclave output)')
  const t = tOption(values.t)
  const r = repoOption(values.repo, true) ?? ''
  const pcrs = readPcrFile(positionals[0] ?? '', 'PCRS.json')
  const [p0, p1, p2] = [pcrs[0], pcrs[1], pcrs[2]]
  if (p0 === undefined || p1 === undefined || p2 === undefined) throw new CliError(`${positionals[0] ?? ''}: PCR0, PCR1 and PCR2 are all needed`)
  const template = buildReleaseSignature({ pcrs: { 0: p0, 1: p1, 2: p2 }, r, t, ...(values.content === undefined ? {} : { content: values.content }) })
  return { values, request: { template, check: { expectedPcrs: { 0: p0, 1: p1, 2: p2 }, expect: t, repo: r } } }
}

const SUBCOMMANDS: Record<string, (args: string[]) => Promise<{ values: Common; request: Request } | null>> = {
  build: buildRequest,
  launch: launchRequest,
  release: releaseRequest,
}

/** Signs, then verifies as a client would: a remote signer could have changed the event. */
async function signChecked(values: SignerValues, request: Request): Promise<NostrEvent> {
  const signer = await openSigner(values)
  let event: NostrEvent
  try {
    event = await signer.sign(request.template)
  } finally {
    await signer.close()
  }
  const result = await verifyNecSignature(event, request.check)
  if (!result.valid) {
    const failed = result.checks.find((c) => !c.ok)
    throw new CliError(`the signed event does not verify: ${failed?.detail ?? result.reason ?? 'invalid'}`, EXIT_INVALID)
  }
  return event
}

/** Sends the release to the relays; the verdict of each on stderr. True when one took it. */
async function publish(event: NostrEvent, values: ReleaseValues): Promise<boolean> {
  const timeoutSec = parseTimeout(values.timeout, 10)
  // a throwaway key answers AUTH: the event is already signed by its author
  const session = openSession(clientIdentity(undefined).identity, clientRelays(values.relay, values.relays))
  try {
    const report = await session.pool.publish(event, { timeoutMs: timeoutSec * 1000 })
    for (const r of report) console.error(`${r.ok ? '✓' : '✗'} ${r.url}${r.message === '' ? '' : ` ${r.message}`}`)
    return report.some((r) => r.ok)
  } finally {
    await session.close()
  }
}

export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args
  if (name === '--help' || name === '-h') {
    console.log(USAGE)
    return EXIT_OK
  }
  const sub = name === undefined ? undefined : SUBCOMMANDS[name]
  if (sub === undefined) throw new CliError(`expected build, launch or release${name === undefined ? '' : `, got '${name.slice(0, 40)}'`} (see nec01 sign --help)`)
  const parsed = await sub(rest)
  if (parsed === null) return EXIT_OK
  // only release parses --publish: build and launch events are marked not for publishing
  const values = parsed.values as ReleaseValues
  const event = await signChecked(values, parsed.request)
  console.log(JSON.stringify(event))
  if (values.publish === true && !(await publish(event, values))) {
    console.error('nec01: no relay accepted the release signature')
    return EXIT_INVALID
  }
  return EXIT_OK
}
