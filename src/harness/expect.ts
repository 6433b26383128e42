// Assertions that speak the contract's language: where bytes differ, by how much an attribute is stale.
export class ClauseFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClauseFailure';
  }
}

export function fail(message: string): never {
  throw new ClauseFailure(message);
}

export function check(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) fail(typeof message === 'function' ? message() : message);
}

const hex = (b: Buffer, at: number) => b.subarray(at, at + 8).toString('hex');

/** Compare bytes with the model; the message names the first difference and how many bytes differ. */
export function expectBytes(actual: Buffer, expected: Buffer, what: string): void {
  if (actual.equals(expected)) return;
  if (actual.length !== expected.length) {
    const n = Math.min(actual.length, expected.length);
    let i = 0;
    while (i < n && actual[i] === expected[i]) i++;
    fail(`${what}: got ${actual.length} bytes, expected ${expected.length}${i < n ? `; first difference at offset ${i}` : ''}`);
  }
  let first = -1;
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  fail(`${what}: ${count} of ${actual.length} bytes differ, first at offset ${first} (got ${hex(actual, first)}, expected ${hex(expected, first)})`);
}

export function errnoOf(e: unknown): string {
  const err = e as { code?: string };
  return err?.code ?? String(e);
}

/** Run fn and return its errno code (or 'OK'). */
export async function errnoFrom(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'OK';
  } catch (e) {
    return errnoOf(e);
  }
}
