// The NIP-13 mining of src/cli/pow.ts, in a worker thread: minePow is one tight loop, and on
// the main thread it would stop the progress line and the relay connections for its whole run.
import { parentPort, workerData } from 'node:worker_threads'
import { minePow } from 'nostr-tools/nip13'
import type { UnsignedEvent } from 'nostr-tools/pure'

const { event, bits } = workerData as { event: UnsignedEvent; bits: number }
parentPort?.postMessage(minePow(event, bits))
