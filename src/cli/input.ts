// Reading a command's input from a file or standard input, bounded so a huge or endless
// input gives an error instead of exhausting memory.
import { CliError } from './exit.js'
import { FileReadError, readBoundedFile } from '../files.js'

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

/** Reads INPUT: a path, '-' or nothing for standard input. */
export async function readInput(path: string | undefined, limit = MAX_INPUT_BYTES): Promise<Uint8Array> {
  if (path === undefined || path === '-') return readStdin(limit)
  try {
    return new Uint8Array(readBoundedFile(path, limit))
  } catch (err) {
    if (err instanceof FileReadError) throw new CliError(err.message)
    throw err
  }
}
