// Not run: `npx tsc -p examples` compiles it against the built declarations, as an app that
// installed nec01 would, so a name dropped from nec01/service or nec01 fails the type check.
// It is also the long way round launchService(): startService() with every part chosen.
import { verifyTeeRoot, type NostrEvent, type VerifyResult } from 'nec01'
import {
  CommandError,
  createLogger,
  isSimulated,
  launchService,
  loadRelayConfig,
  openNsm,
  relaysFromUrls,
  startEmbeddedRelay,
  startService,
  DEFAULT_RELAYS_FILE,
  type CommandDeps,
  type CommandHandler,
  type CommandReply,
  type CommandRequest,
  type CommandSpec,
  type LaunchOptions,
  type RelayEntry,
  type Service,
  type ServiceConfig,
  type VarsReader,
} from 'nec01/service'

const greet: CommandHandler = async (req: CommandRequest, deps: CommandDeps): Promise<CommandReply> => {
  const vars: VarsReader = deps.vars
  const greeting = vars.get('greeting')
  if (greeting === undefined) throw new CommandError('INTERNAL', 'greeting is not set yet')
  return { result: { greeting, to: req.sender, via: req.transport }, text: greeting }
}

export const commands: Record<string, CommandSpec> = { greet: { summary: 'the greeting the operator set', example: 'greet', handler: greet } }

export async function byHand(dev: boolean, relayUrls: string[] | null): Promise<Service> {
  const relay = dev ? await startEmbeddedRelay({ host: '127.0.0.1', port: 0 }) : null
  const relays: RelayEntry[] = relayUrls === null ? loadRelayConfig(DEFAULT_RELAYS_FILE).relays : relaysFromUrls(relayUrls).relays
  if (relay !== null) relays.push({ url: relay.url, read: true, write: true })
  const nsm = await openNsm({ dev })
  const config: ServiceConfig = {
    nsm,
    ...(isSimulated(nsm) ? { trustRoot: nsm.rootDer() } : {}),
    tee: isSimulated(nsm) ? 'simulated' : 'nsm',
    t: dev ? 'dev' : 'prod',
    relays,
    healthPort: 0,
    marginSec: 3600,
    name: 'greeter',
    version: '1.0.0',
    log: createLogger({ service: 'greeter' }),
    extraCommands: commands,
  }
  return startService(config)
}

// A launch without a mode does not compile: nothing runs on the simulator by default.
// @ts-expect-error mode is required
export const noMode: LaunchOptions = { commands }

export async function launched(): Promise<string> {
  const app = await launchService({ mode: 'dev', commands, embeddedRelayPort: 0, healthPort: 0 })
  await app.close()
  return app.clientTrustFlags
}

export function check(reply: NostrEvent, rootPem: string): Promise<VerifyResult> {
  return verifyTeeRoot(reply, { root: rootPem, anyPcrs: true, expect: 'dev' })
}
