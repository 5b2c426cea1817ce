// The error family of runtime/package.py: every error a user causes and can fix.

/** Every error a user causes and can fix (bad input, options, files or models). */
export class TraductorError extends Error {
  constructor(message) { super(message); this.name = this.constructor.name; }
}
/** A model package that cannot be used: missing, corrupt, or of an unknown format. */
export class ModelError extends TraductorError {}
/** Bad input or options. */
export class InputError extends TraductorError {}
