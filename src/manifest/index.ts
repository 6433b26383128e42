import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { formatKey, isClauseId, parseKey } from '../catalogue/index.ts';

export class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly expected: string,
  ) {
    super(`${file}: ${field || '(top level)'}: ${expected}`);
    this.name = 'ManifestError';
  }
}

/**
 * The claims, each field as written (no defaults): a variant's `claims` are these, all optional,
 * and override only what they name. (Zod 4 applies a default inside an optional field, so a
 * `.partial()` of the defaulted schema below would reset every unnamed claim of a variant to its
 * default: `xattrs: true` of the manifest became false in its variants.)
 */
const claimFields = {
  passthrough: z.boolean(),
  mirror: z.boolean(),
  xattrs: z.boolean(),
  exec: z.boolean(),
  /** How long a change made behind the server's back may stay invisible (ATT-008). */
  attrTimeoutMs: z.number().int().nonnegative(),
  /**
   * Passthrough opens carry FOPEN_DIRECT_IO too: read and write go to the server by design and
   * only mmap uses the backing file (SPEC §4), so the no-FUSE_READ/WRITE clauses do not apply.
   */
  directIo: z.boolean(),
  /**
   * Which opens the server answers in passthrough: every open (rw), only O_RDONLY opens (ro)
   * or only O_WRONLY opens (wo), as mergerfs's passthrough.io offers. The others may be served
   * by the server, so the clauses that expect passthrough for them do not apply; an open that
   * joins an inode already in passthrough still must (the kernel refuses mixed io modes).
   */
  passthroughIo: z.enum(['rw', 'ro', 'wo']),
  /**
   * How the server takes requests and answers them: `dev`, read(2)/write(2) on /dev/fuse, or
   * `io_uring`, FUSE over io_uring (the FUSE_OVER_IO_URING INIT flag, then ring entries; Linux
   * 6.14+ with CONFIG_FUSE_IO_URING). A run certifying an io_uring claim turns the fuse module's
   * enable_uring on for its duration (src/mount/uring-param.ts); NEG-007 checks the claim.
   */
  transport: z.enum(['dev', 'io_uring']),
};

const Claims = z
  .object({
    passthrough: claimFields.passthrough,
    mirror: claimFields.mirror.default(true),
    xattrs: claimFields.xattrs.default(false),
    exec: claimFields.exec.default(true),
    attrTimeoutMs: claimFields.attrTimeoutMs.optional(),
    directIo: claimFields.directIo.default(false),
    passthroughIo: claimFields.passthroughIo.default('rw'),
    transport: claimFields.transport.default('dev'),
  })
  .strict();

const VariantClaims = z.object(claimFields).partial().strict();

const Expectation = z
  .object({
    clause: z.string().refine(isClauseId, { message: 'a clause id from `fusecert clauses` (e.g. RW-004 or IOM-001[O_RDONLY+O_DIRECT])' }),
    status: z.enum(['fail', 'skip', 'hung']),
    reason: z.string().min(10, 'a written reason (at least 10 characters)'),
    expires: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD'),
    /**
     * A regular expression (JavaScript syntax) the failure's own reason must contain for the
     * failure to be expected: a failure of the same clause for another cause stays a failure,
     * so an entry written for one bug cannot hide a second one.
     */
    match: z.string().min(1).refine(isRegExp, { message: 'a regular expression (JavaScript syntax) the failure reason must contain' }).optional(),
  })
  .strict();

function isRegExp(s: string): boolean {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

const Variant = z
  .object({
    args: z.array(z.string()).default([]),
    claims: VariantClaims.default({}),
    description: z.string().optional(),
  })
  .strict();

const ManifestSchema = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9._-]+$/, 'a name of letters, digits, dot, dash or underscore'),
    description: z.string().optional(),
    version: z.array(z.string()).min(1).optional(),
    command: z
      .array(z.string())
      .min(1)
      .refine((a) => a.some((s) => s.includes('{mountpoint}')), { message: 'an argv array containing {mountpoint}' }),
    env: z.record(z.string(), z.string()).default({}),
    daemonizes: z.boolean().default(false),
    mountTimeoutMs: z.number().int().positive().default(10000),
    unmount: z.enum(['signal', 'umount', 'fusermount']).default('signal'),
    /** Bytes of free space the source needs (servers that refuse to create below a minimum, e.g. mergerfs). */
    sourceSizeMb: z.number().int().positive().default(1024),
    claims: Claims,
    /** PRF thresholds (passthrough / native throughput) below which the SHOULD clauses warn. */
    thresholds: z
      .object({ readRatio: z.number().positive().max(2).optional(), writeRatio: z.number().positive().max(2).optional() })
      .strict()
      .default({}),
    variants: z.record(z.string().regex(/^[a-z0-9-]+$/), Variant).default({}),
    expect: z.array(Expectation).default([]),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;
export type Claims = z.infer<typeof Claims>;
export type Expectation = z.infer<typeof Expectation>;

/** A manifest resolved for one run: the variant's args and claims folded in, paths absolute. */
export interface ServerSpec {
  name: string; // name or name@variant
  file: string;
  dir: string;
  manifest: Manifest;
  variant: string | null;
  argv: string[]; // with placeholders
  /** The manifest's `version` command, ${VAR} expanded and command[0] resolved, or null. */
  versionArgv: string[] | null;
  claims: Claims;
  expect: Expectation[];
}

function formatPath(p: PropertyKey[]): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

export function parseManifest(text: string, file: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(file, '', `not valid JSON (${(e as Error).message})`);
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    let expected = issue.message;
    if (issue.code === 'unrecognized_keys' && issue.keys.includes('fallback') && issue.path.at(-1) === 'claims')
      expected =
        'unknown field "fallback": it is no longer a claim (no clause read it): serving a file whose backing file the kernel refuses is required of every passthrough server (BKG-006, BKG-007); remove the field';
    else if (issue.code === 'unrecognized_keys')
      expected = `unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (check the spelling; see README "Writing a manifest")`;
    else if (issue.code === 'invalid_type') expected = `expected ${issue.expected}`;
    throw new ManifestError(file, formatPath(issue.path), expected);
  }
  return r.data;
}

/** Resolve command[0]: "./x" is relative to the manifest's folder; a bare name is looked up on PATH. */
export function resolveExecutable(cmd: string, dir: string): string | null {
  if (cmd.startsWith('./') || cmd.startsWith('../')) {
    const p = path.resolve(dir, cmd);
    return existsSync(p) ? p : null;
  }
  if (cmd.startsWith('/')) return existsSync(cmd) ? cmd : null;
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (d && existsSync(path.join(d, cmd))) return path.join(d, cmd);
  }
  return null;
}

/** Expand ${VAR} in argv entries from the environment (for servers whose binary path comes from it). */
function expandEnv(s: string, file: string, field: string): string {
  return s.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
    const v = process.env[name];
    if (v === undefined) throw new ManifestError(file, field, `environment variable ${name} is not set (it names the server binary; export it first)`);
    return v;
  });
}

export function loadServer(spec: string): ServerSpec {
  // "path/manifest.json" or "path/manifest.json@variant"
  const m = /^(.*?)(?:@([a-z0-9-]+))?$/.exec(spec)!;
  const file = path.resolve(m[1]);
  const variant = m[2] ?? null;
  if (!existsSync(file)) throw new ManifestError(file, '', 'file not found (pass the path of a manifest.json, e.g. servers/ptfs/manifest.json)');
  const manifest = parseManifest(readFileSync(file, 'utf8'), file);
  return resolveServer(manifest, file, variant);
}

export function resolveServer(manifest: Manifest, file: string, variant: string | null, extraArgs: string[] = []): ServerSpec {
  const dir = path.dirname(file);
  let claims = { ...manifest.claims };
  let args: string[] = [];
  if (variant) {
    const v = manifest.variants[variant];
    if (!v) throw new ManifestError(file, `variants.${variant}`, `no such variant (known: ${Object.keys(manifest.variants).join(', ') || 'none'})`);
    args = v.args;
    claims = { ...claims, ...v.claims };
  }
  const argv = [...manifest.command, ...args, ...extraArgs].map((a, i) => expandEnv(a, file, `command[${i}]`));
  const exe = resolveExecutable(argv[0], dir);
  if (!exe) {
    const hint = argv[0].includes('ptfs') ? ' (build it: fusecert build-ptfs, or npm run build in a checkout)' : ' (install the server or fix command[0])';
    throw new ManifestError(file, 'command[0]', `executable ${argv[0]} not found${hint}`);
  }
  argv[0] = exe;
  let versionArgv: string[] | null = null;
  if (manifest.version) {
    versionArgv = manifest.version.map((a, i) => expandEnv(a, file, `version[${i}]`));
    versionArgv[0] = resolveExecutable(versionArgv[0], dir) ?? versionArgv[0];
  }
  return {
    name: variant ? `${manifest.name}@${variant}` : manifest.name,
    file,
    dir,
    manifest,
    variant,
    argv,
    versionArgv,
    claims,
    expect: variant ? expectForVariant(manifest.expect, variant) : manifest.expect,
  };
}

/**
 * Certifying `manifest.json@V` alone, its results carry no variant: the entries written for V
 * (`ID@V`) apply to them, and those of the server as it is, or of another variant, do not.
 */
function expectForVariant(expect: Expectation[], variant: string): Expectation[] {
  return expect.filter((e) => parseKey(e.clause).variant === variant).map((e) => ({ ...e, clause: formatKey({ ...parseKey(e.clause), variant: undefined }) }));
}

/**
 * Whether certifying this spec needs FUSE over io_uring: it claims the transport, or (the manifest
 * as a whole: its variants run too) one of its variants does.
 */
export function needsIoUring(spec: ServerSpec): boolean {
  if (spec.claims.transport === 'io_uring') return true;
  if (spec.variant) return false;
  return Object.values(spec.manifest.variants).some((v) => (v.claims.transport ?? spec.manifest.claims.transport) === 'io_uring');
}

export function substitute(argv: string[], source: string, mountpoint: string, scratch = ''): string[] {
  return argv.map((a) => a.replaceAll('{source}', source).replaceAll('{mountpoint}', mountpoint).replaceAll('{scratch}', scratch));
}
