// What a command has started (a relay, the NSM, the KMS stand-in, the service), kept as a
// stack so that a start that fails halfway, and a normal stop, close the same things in
// reverse order: a server left open keeps the process alive and its port taken.
import { errorText } from '../../nec01/errors.js'
import type { Logger } from '../log.js'

export interface Closers {
  /** Keeps `close` for closeAll; the function returned closes it now (once) and drops it. */
  add(what: string, close: () => Promise<void>): () => Promise<void>
  /** Closes everything kept, last added first; a close that fails is logged and the rest still run. */
  closeAll(): Promise<void>
}

interface Entry {
  what: string
  close: () => Promise<void>
}

async function closeOne(entry: Entry, log: Logger): Promise<void> {
  try {
    await entry.close()
  } catch (err) {
    // the error that ended the start (if any) is the one the user sees; this one is logged
    log.warn('cannot close', { what: entry.what, error: errorText(err).split('\n')[0] })
  }
}

export function createClosers(log: Logger): Closers {
  const stack: Entry[] = []
  const drop = (entry: Entry): boolean => {
    const i = stack.indexOf(entry)
    if (i >= 0) stack.splice(i, 1)
    return i >= 0
  }
  return {
    add(what, close) {
      const entry: Entry = { what, close }
      stack.push(entry)
      return async () => {
        if (drop(entry)) await closeOne(entry, log)
      }
    },
    async closeAll() {
      for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) await closeOne(entry, log)
    },
  }
}
