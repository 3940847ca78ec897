// nec01/service: what a deployment needs to run its own attested Nostr service (a bot, an
// oracle, a signer) without forking: its commands, the service, and the NSM and relays to
// start it on. Everything else under src/ is internal and may change. Node only.
export { launchService, LaunchError, DEFAULT_EMBEDDED_RELAY_PORT, DEFAULT_HEALTH_PORT, type LaunchMode, type LaunchOptions, type LaunchedService } from './launch.js'
export { startService, SERVICE_NAME, type Service, type ServiceConfig } from './service.js'
export {
  CommandError,
  type CommandDeps,
  type CommandHandler,
  type CommandReply,
  type CommandRequest,
  type CommandSpec,
  type ServiceFacts,
  type Transport,
} from './commands.js'
export type { VarsReader } from './vars.js'
export type { RateLimitConfig } from './ratelimit.js'
export type { Budget, ServiceBudgets } from './limits.js'
export type { RpcErrorCode } from '../../nec01/rpc.js'
export { createLogger, type Logger, type LoggerOptions, type LogLevel } from '../log.js'
export { openNsm, isSimulated, defaultStateDir, STATE_DIR_ENV, type OpenNsmOptions, type OpenedNsm } from '../nsm/open.js'
export { NsmError, isNsmError, type Nsm, type NsmErrorCode } from '../nsm/types.js'
export { ConfigError, DEFAULT_RELAYS_FILE, loadRelayConfig, parseRelayConfig, relaysFromUrls, type ConfigErrorCode, type RelayConfig, type RelayEntry } from '../relays/config.js'
export { startEmbeddedRelay, type EmbeddedRelay, type EmbeddedRelayOptions } from '../embedded/relay.js'
