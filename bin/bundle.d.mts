/** The JS bundle of a TypeScript entry (absolute path), or null (run it through tsx); see bundle.mjs. */
export function bundled(entry: string, cache?: string): Promise<string | null>;
/** Import a TypeScript entry in this process: its bundle, else the source through tsx. */
export function importEntry(entry: string): Promise<Record<string, unknown>>;
/** The node arguments that run a TypeScript entry: its bundle, else `--import tsx ENTRY`. */
export function nodeArgs(entry: string): Promise<string[]>;
/** Every entry fusecert starts as a process of its own (absolute paths). */
export const ENTRIES: string[];
/** Build the bundles that are missing or stale now (before a UML guest, whose root is read-only). */
export function prepareBundles(): Promise<void>;
