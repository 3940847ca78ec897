// The one error shape of this project: a class per module, each with a stable `code` a caller
// can branch on, and the message for people; plus the one way to turn anything thrown into text.

/**
 * Base of every coded error. `name` is the subclass's; subclasses that are bundled for the
 * browser also set it as a field, because a minifier renames classes.
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The message of anything thrown: an Error's message, a string as is, anything else stringified. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message
  if (typeof err === 'string') return err
  return String(err)
}
