// User-facing errors. A MambaError carries one line that names the problem (and the file, where
// there is one); the CLI prints that line alone and exits non-zero. Anything else that escapes is
// a bug in mamba-ts and is reported as such.

export class MambaError extends Error {
  override name = 'MambaError';
}

/** Throws a MambaError with `message`; for one-line guards: `cond || fail('...')`. */
export function fail(message: string): never {
  throw new MambaError(message);
}
