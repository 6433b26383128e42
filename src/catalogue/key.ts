// A result's key: the clause, the parameter of a parameterised clause and the server variant it
// ran on. It travels as data ({ id, param, variant }) from the clause to every report; its text
// form `ID[param]@variant` is made by formatKey and read back by parseKey only where a person typed
// it (--only, a manifest's expect entry) or where a results file predates the structured key.

export interface ClauseKey {
  /** the catalogue id, e.g. IOM-001 */
  id: string;
  /** e.g. O_RDONLY+O_DIRECT */
  param?: string;
  /** e.g. no-passthrough */
  variant?: string;
}

export function formatKey(k: ClauseKey): string {
  return `${k.id}${k.param !== undefined ? `[${k.param}]` : ''}${k.variant !== undefined ? `@${k.variant}` : ''}`;
}

/** `ID`, `ID[param]`, `ID@variant` or `ID[param]@variant`; a parameter may hold any character but `]`. */
export function parseKey(text: string): ClauseKey {
  const open = text.indexOf('[');
  const close = open >= 0 ? text.indexOf(']', open) : -1;
  const afterParam = close >= 0 ? close + 1 : 0;
  const at = text.indexOf('@', afterParam);
  const idEnd = open >= 0 && close >= 0 ? open : at >= 0 ? at : text.length;
  const k: ClauseKey = { id: text.slice(0, idEnd) };
  if (open >= 0 && close >= 0) k.param = text.slice(open + 1, close);
  if (at >= 0) k.variant = text.slice(at + 1);
  return k;
}

/** The key of a result: its structured key, or for a results file written before it, its id read back. */
export function keyOf(r: { id: string; key?: ClauseKey }): ClauseKey {
  return r.key ?? parseKey(r.id);
}

/** Does `wanted` (typed by a person: an expect entry, an --only id) cover `k`? No param covers every param. */
export function covers(wanted: ClauseKey, k: ClauseKey): boolean {
  return wanted.id === k.id && wanted.variant === k.variant && (wanted.param === undefined || wanted.param === k.param);
}

/** Does an --only value select `k`? The parts it leaves out match anything (RW-002 selects RW-002[x]@v). */
export function selects(only: ClauseKey, k: ClauseKey): boolean {
  return only.id === k.id && (only.param === undefined || only.param === k.param) && (only.variant === undefined || only.variant === k.variant);
}
