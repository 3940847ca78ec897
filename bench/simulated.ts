// The service's signing side, in this process, exactly as startService assembles it
// (simulated NSM → identity → PCR16 → root keeper → publisher → replier) but with a relay
// sink that only records what would have been sent. Used for the memoized-carrier figure
// (a real service note) and for the per-request floor (no relay).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NostrEvent } from '../nec01/types.js'
import { createLogger, type Logger } from '../src/log.js'
import { openNsm } from '../src/nsm/open.js'
import type { NsmSimulator } from '../src/nsm/simulator.js'
import { createIdentity, type Identity } from '../src/service/identity.js'
import { createPublisher, type Publisher, type RelayResult } from '../src/service/publish.js'
import { createReplier, type Replier } from '../src/service/reply.js'
import { bindIdentityPcr, createRootKeeper, type RootKeeper } from '../src/service/root.js'

export const quietLogger: Logger = createLogger({}, { level: 'error', sink: () => undefined })

/** Stand-in relay URL on replies: nothing listens there. */
export const SINK_URL = 'ws://127.0.0.1:1'

export interface SimulatedService {
  nsm: NsmSimulator
  identity: Identity
  roots: RootKeeper
  publisher: Publisher
  replier: Replier
  /** the simulator's root certificate: the trust root for its documents */
  rootDer: Uint8Array
  /** called with every event the service hands to "relays" */
  onPublish: (listener: ((event: NostrEvent) => void) | null) => void
  close(): Promise<void>
}

export async function startSimulatedService(): Promise<SimulatedService> {
  const stateDir = mkdtempSync(join(tmpdir(), 'nec01-bench-sim-'))
  const nsm = (await openNsm({ dev: true, stateDir })) as NsmSimulator
  const expectedPcrs: Record<number, string> = {}
  for (const i of [0, 1, 2]) expectedPcrs[i] = Buffer.from((await nsm.describePcr(i)).value).toString('hex')
  const identity = await createIdentity((n) => nsm.random(n))
  await bindIdentityPcr(nsm, identity)
  const roots = createRootKeeper({ nsm, identity, t: 'dev', trustRoot: nsm.rootDer(), expectedPcrs, marginSec: 3600, debug: false, log: quietLogger })
  await roots.refresh()
  let listener: ((event: NostrEvent) => void) | null = null
  const relays = {
    publish: async (event: NostrEvent): Promise<RelayResult[]> => {
      listener?.(event)
      return [{ url: SINK_URL, ok: true, message: '' }]
    },
  }
  const publisher = createPublisher({ identity, roots, relays, log: quietLogger })
  const replier = createReplier({ identity, publisher, writeRelays: () => [SINK_URL], reachable: (url) => url === SINK_URL })
  return {
    nsm,
    identity,
    roots,
    publisher,
    replier,
    rootDer: nsm.rootDer(),
    onPublish: (l) => {
      listener = l
    },
    async close() {
      roots.stop()
      await nsm.close()
      rmSync(stateDir, { recursive: true, force: true })
    },
  }
}
