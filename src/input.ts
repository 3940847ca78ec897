// Reading a command's input from a file or standard input, bounded so a huge or endless
// input gives an error instead of exhausting memory.
import { open } from 'node:fs/promises'
import { CliError } from './exit.js'

/** Real inputs are a few KiB; 1 MiB leaves room for any event a relay would carry. */
export const MAX_INPUT_BYTES = 1024 * 1024

async function readStdin(limit: number): Promise<Uint8Array> {
  if (process.stdin.isTTY === true) throw new CliError('no INPUT given and standard input is a terminal (pass a file, or pipe the input)')
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer
    total += buf.length
    if (total > limit) {
      process.stdin.destroy()
      throw new CliError(`input is larger than ${limit} bytes`)
    }
    chunks.push(buf)
  }
  return new Uint8Array(Buffer.concat(chunks))
}

async function readFileBounded(path: string, limit: number): Promise<Uint8Array> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    throw new CliError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new CliError(`${path} is not a regular file`)
    if (stat.size > limit) throw new CliError(`${path} is larger than ${limit} bytes`)
    const buf = Buffer.alloc(stat.size)
    const { bytesRead } = await handle.read(buf, 0, stat.size, 0)
    return new Uint8Array(buf.subarray(0, bytesRead))
  } finally {
    await handle.close()
  }
}

/** Reads INPUT: a path, '-' or nothing for standard input. */
export function readInput(path: string | undefined, limit = MAX_INPUT_BYTES): Promise<Uint8Array> {
  return path === undefined || path === '-' ? readStdin(limit) : readFileBounded(path, limit)
}
