// The command line: one declarative spec per command, read by the parser and by `--help`, so
// what a command accepts and what its help says cannot drift apart. Parsing is node's parseArgs in
// non-strict mode (it only tokenises); every decision about a token is made here, so every bad
// input is a UsageError with a message of ours, one line, naming the argument.
import os from 'node:os';
import { parseArgs } from 'node:util';

/**
 * Suite files run in parallel by default. The suites mostly wait (on the server, on deadlines, on
 * stop timeouts), not compute: on 2 cores a ptfs run took 28.1-28.8 s at 2, 25.6-26.3 s at 3 and
 * 23.7-24.7 s at 4, with the same verdicts. Capped at 4, the most that was measured. On one CPU
 * (a UML guest has one) a second worker only adds its start-up, which there costs seconds: BKG and
 * NEG clauses of two servers in a 6.12 guest took 58 s at 2 and 38 s at 1.
 */
export const DEFAULT_JOBS = os.availableParallelism() === 1 ? 1 : Math.max(2, Math.min(4, 2 * os.availableParallelism()));

export class UsageError extends Error {}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Several values: the option may repeat, and the words after it (up to the next option) are its values too. */
  list?: boolean;
  /** List values are also split at commas (`--only A,B`). */
  commas?: boolean;
  /** The value's name in help and messages. */
  metavar?: string;
  default?: string;
  /** Shown without brackets in the synopsis; the command checks it (with a message of its own). */
  required?: boolean;
  help: string;
}

export interface CommandSpec {
  summary: string;
  options: Record<string, OptionSpec>;
  /** Words that are not option values; absent: the command takes none. */
  positionals?: { metavar: string; min: number; help: string };
  /** Lines printed after the options in --help. */
  notes?: string[];
}

export const COMMANDS = {
  run: {
    summary: 'certify one or more servers described by manifests',
    options: {
      server: {
        type: 'string',
        list: true,
        required: true,
        metavar: 'PATH[@variant]',
        help: 'a server manifest, or one of its variants; several: repeat --server or list them after it',
      },
      only: {
        type: 'string',
        list: true,
        commas: true,
        metavar: 'ID',
        help: 'only these clauses (space or comma separated: --only RW-001 RW-002, --only BKG-002,IOM-001)',
      },
      family: {
        type: 'string',
        list: true,
        commas: true,
        metavar: 'FAM',
        help: 'only these families (space or comma separated: --family PLT NEG, --family RW,ATT)',
      },
      jobs: { type: 'string', metavar: 'N', default: String(DEFAULT_JOBS), help: 'suite files in parallel (twice the CPUs, 2 to 4; 1 on one CPU)' },
      strict: { type: 'boolean', help: 'skips and unexpected passes fail, SHOULD failures fail' },
      junit: {
        type: 'string',
        metavar: 'PATH',
        help: 'the JUnit file, in an existing directory or under --out (default OUT/junit.xml; with several servers PATH-NAME.xml)',
      },
      out: { type: 'string', metavar: 'DIR', default: 'reports', help: 'where results.json and junit.xml go (a subdirectory per server when several)' },
      seed: { type: 'string', metavar: 'N', help: 'clause order and FSX operations (default random, printed)' },
      shuffle: { type: 'boolean', help: 'run clauses in an order drawn from the seed' },
      'fsx-runs': { type: 'string', metavar: 'N', default: '40', help: 'FSX operation sequences per variant' },
      deadline: { type: 'string', metavar: 'MS', default: '30000', help: 'per clause; past it the clause is HUNG and the connection aborted' },
      quiet: { type: 'boolean', help: 'no progress lines and no summary table' },
      kernel: {
        type: 'string',
        list: true,
        commas: true,
        metavar: 'host|uml:VERSION',
        help: "where to certify: host (this machine's kernel) or uml:6.12 (a User-Mode Linux guest with a kernel from `fusecert kernel build`); several: one run per kernel and a comparison (default host)",
      },
      baseline: {
        type: 'string',
        metavar: 'PATH',
        help: 'an earlier results.json of this server, or the --out directory of an earlier run (DIR/NAME/results.json per server): fail only on what got worse',
      },
      'baseline-tolerance': {
        type: 'string',
        metavar: 'R',
        default: '0.1',
        help: "with --baseline: how far (relative) the new ~95 % interval of readRatio/writeRatio (PRF) must lie below the baseline's before it is a drop",
      },
    },
    notes: [
      'exit codes: 0 every MUST clause passes or is expected, 1 failures, 2 environment or input errors',
      'with --baseline: 0 nothing got worse than the baseline (known failures are reported, not counted), 1 a new failure, a figure drop or a run error',
      'example: fusecert run --server servers/ptfs/manifest.json --family PLT NEG',
    ],
  },
  compare: {
    summary: 'one comparison page from saved results.json files',
    options: {
      o: {
        type: 'string',
        short: 'o',
        metavar: 'PATH.html|PATH.md',
        default: 'reports/compare.html',
        help: 'the page to write: .md gives Markdown, anything else HTML',
      },
    },
    positionals: { metavar: 'RESULTS.json ...', min: 1, help: 'results files written by `fusecert run` of this major version' },
    notes: ['example: fusecert compare reports/a/results.json reports/b/results.json -o reports/compare.md'],
  },
  expect: {
    summary: 'manifest `expect` entries for the failures of a run, to adopt fusecert on a server as it is',
    options: {
      from: { type: 'string', required: true, metavar: 'RESULTS.json', help: 'the results of `fusecert run` whose failures become entries (required)' },
      o: { type: 'string', short: 'o', metavar: 'PATH', help: 'write the JSON array there instead of printing it' },
      write: { type: 'string', metavar: 'MANIFEST', help: "merge the entries into this manifest's expect list (an entry for the same clause is replaced)" },
    },
    notes: [
      'each entry: clause id as in the results (ID[param]@variant), status fail or hung, reason "TODO: " + the failure, expires 90 days from today',
      'example: fusecert expect --from reports/results.json --write servers/myfs/manifest.json',
    ],
  },
  explain: {
    summary: "one failure's story: what the user saw, what the server answered, the rule, the reproducer",
    options: {},
    positionals: { metavar: 'RESULTS.json ID', min: 2, help: 'a results file of `fusecert run` and a clause id (ID, or ID[param]@variant for one result)' },
    notes: ['example: fusecert explain reports/results.json BKG-001'],
  },
  clauses: {
    summary: 'the clause catalogue: id, level, title, what it observes',
    options: { json: { type: 'boolean', help: 'the catalogue as JSON' } },
  },
  doctor: {
    summary: 'what the platform offers, what is missing and how to fix it',
    options: {},
  },
  kernel: {
    summary: 'build and list the User-Mode Linux kernels that `run --kernel uml:VERSION` boots',
    options: {},
    positionals: {
      metavar: 'build SPEC | list',
      min: 1,
      help: 'build SPEC: SPEC is a Debian series (6.12: linux-source-6.12, installed when missing as root) or a Linux source tree; list: the cached kernels',
    },
    notes: [
      'kernels are cached in $FUSECERT_KERNEL_CACHE, else $XDG_CACHE_HOME/fusecert/kernels, else ~/.cache/fusecert/kernels, keyed by release and configuration (src/kernel/uml.config)',
      'a first build takes about 11 min (6.12) to 13 min (6.18) on 2 cores; building and booting need no root',
      'example: fusecert kernel build 6.12 && fusecert run --kernel uml:6.12 --server servers/ptfs/manifest.json',
    ],
  },
  'build-ptfs': {
    summary: 'build the reference server and the reply tracer from their C sources (run does it when a binary is missing)',
    options: {},
  },
} satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;
export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];

export function isCommand(s: string | undefined): s is CommandName {
  return s !== undefined && Object.hasOwn(COMMANDS, s);
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'this help' };

function optionsOf(cmd: CommandName): Record<string, OptionSpec> {
  return { ...(COMMANDS[cmd].options as Record<string, OptionSpec>), help: HELP };
}

function flag(name: string, o: OptionSpec): string {
  const long = name.length === 1 && o.short === name ? `-${name}` : `--${name}`;
  return o.type === 'string' ? `${long} ${o.metavar ?? 'VALUE'}${o.list ? ' ...' : ''}` : long;
}

function synopsis(cmd: CommandName): string {
  const spec: CommandSpec = COMMANDS[cmd];
  const parts = Object.entries(spec.options).map(([n, o]) => ((o as OptionSpec).required ? flag(n, o) : `[${flag(n, o)}]`));
  if (spec.positionals) parts.unshift(spec.positionals.metavar);
  // Wrapped at 100 columns, continuation lines under the first option.
  const lines = [`fusecert ${cmd}`];
  const indent = ' '.repeat(`usage: fusecert ${cmd} `.length);
  for (const p of parts) {
    if ((lines.length === 1 ? 'usage: ' : '').length + lines[lines.length - 1]!.length + 1 + p.length > 100) lines.push(indent + p);
    else lines[lines.length - 1] += ' ' + p;
  }
  return lines.join('\n');
}

/** `fusecert CMD --help`: the synopsis, every option with its default, and the command's notes. */
export function commandHelp(cmd: CommandName): string {
  const spec: CommandSpec = COMMANDS[cmd];
  const rows = Object.entries(optionsOf(cmd)).map(([n, o]) => [flag(n, o), o.help + (o.default !== undefined ? ` (default ${o.default})` : '')] as const);
  if (spec.positionals) rows.unshift([spec.positionals.metavar, spec.positionals.help]);
  const w = Math.max(...rows.map(([f]) => f.length));
  return [
    `fusecert ${cmd}: ${spec.summary}`,
    '',
    `usage: ${synopsis(cmd)}`,
    '',
    ...rows.map(([f, h]) => `  ${f.padEnd(w)}  ${h}`),
    ...(spec.notes?.length ? ['', ...spec.notes] : []),
  ].join('\n');
}

/** `fusecert --help`. */
export function usage(version: string): string {
  const w = Math.max(...COMMAND_NAMES.map((c) => c.length));
  return [
    `fusecert ${version} — compliance tests for passthrough-capable FUSE servers`,
    '',
    'usage: fusecert COMMAND [options]     fusecert COMMAND --help for its options',
    '',
    ...COMMAND_NAMES.map((c) => `  ${c.padEnd(w)}  ${COMMANDS[c].summary}`),
    '',
    'examples:',
    '  fusecert run --server servers/ptfs/manifest.json --family PLT NEG',
    '  fusecert compare reports/a/results.json reports/b/results.json -o reports/compare.html',
    '  fusecert run --server servers/ptfs/manifest.json --baseline previous/results.json',
    '  fusecert expect --from reports/results.json --write servers/myfs/manifest.json',
    '',
    'exit codes: 0 every MUST clause passes or is expected, 1 failures, 2 environment or input errors',
  ].join('\n');
}

export interface Parsed {
  /** Values of string options (the last one given, or the default). */
  strings: Record<string, string | undefined>;
  /** Values of boolean options. */
  flags: Record<string, boolean>;
  /** Values of list options, in order, commas split where the option allows it. */
  lists: Record<string, string[]>;
  positionals: string[];
  /** --help or -h was given: print the command's help, ignore the rest. */
  help: boolean;
}

/** A user's word in a message: as is when plain printable ASCII without quotes, else JSON-quoted, so a message stays one line. */
export const show = (s: string) =>
  /^[\x21\x23-\x7e]+$/.test(s) ? s : JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Parse a command's argv against its spec. Throws UsageError, one line, for anything it does not accept. */
export function parseCommand(cmd: CommandName, argv: string[]): Parsed {
  const options = optionsOf(cmd);
  const spec: CommandSpec = COMMANDS[cmd];
  const see = `see fusecert ${cmd} --help`;
  // A real exec cannot pass a NUL; a caller in-process can, and fs would throw on the path.
  const nul = argv.find((w) => w.includes('\0'));
  if (nul !== undefined) throw new UsageError(`argument ${show(nul)} contains a NUL byte`);
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(Object.entries(options).map(([n, o]) => [n, { type: o.type, ...(o.short ? { short: o.short } : {}) }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (
    tokens.some(
      (t) =>
        t.kind === 'option' &&
        t.name === 'help' &&
        Object.hasOwn(options, t.name) &&
        t.index < (tokens.find((x) => x.kind === 'option-terminator')?.index ?? Infinity),
    )
  ) {
    return { strings: {}, flags: {}, lists: {}, positionals: [], help: true };
  }
  const out: Parsed = { strings: {}, flags: {}, lists: {}, positionals: [], help: false };
  for (const [n, o] of Object.entries(options)) {
    if (o.type === 'boolean') out.flags[n] = false;
    else if (o.list) out.lists[n] = [];
    else out.strings[n] = o.default;
  }
  const addTo = (name: string, o: OptionSpec, value: string, raw: string) => {
    const values = o.commas ? value.split(/[,\s]+/).filter(Boolean) : [value];
    if (values.length === 0 || value === '') throw new UsageError(`${raw} ${show(value)}: expected ${o.metavar ?? 'a value'} (${see})`);
    out.lists[name]!.push(...values);
  };
  let collecting: { name: string; o: OptionSpec; raw: string } | null = null;
  let terminated = false;
  for (const t of tokens) {
    if (t.kind === 'option-terminator') {
      terminated = true;
      collecting = null;
      continue;
    }
    if (t.kind === 'positional') {
      if (collecting && !terminated) addTo(collecting.name, collecting.o, t.value, collecting.raw);
      else if (spec.positionals) out.positionals.push(t.value);
      else throw new UsageError(`unexpected argument ${show(t.value)}: ${cmd} takes only options (${see})`);
      continue;
    }
    collecting = null;
    const o = Object.hasOwn(options, t.name) ? options[t.name]! : undefined;
    // parseArgs knows a short flag only through its long name; an unknown `-x` arrives as name 'x'.
    // A one-letter option (compare's -o) has no long form: `--o` is not it.
    if (!o || (t.rawName.startsWith('--') ? t.rawName !== `--${t.name}` || t.name === o.short : o.short !== t.rawName.slice(1))) {
      throw new UsageError(`unknown option ${t.rawName} for ${cmd} (${see})`);
    }
    if (o.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`${t.rawName} takes no value (got ${t.rawName}=${show(t.value)}) (${see})`);
      out.flags[t.name] = true;
      continue;
    }
    // Non-strict parseArgs takes the next word as the value even when it is an option: `--jobs --strict`.
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith('-') && t.value !== '-' && !/^-\d/.test(t.value))) {
      throw new UsageError(
        `${t.rawName} needs a value (${o.metavar ?? 'VALUE'})${t.value !== undefined ? `, got the option ${t.value} (write ${t.rawName}=${t.value} for a value that starts with -)` : ''} (${see})`,
      );
    }
    if (o.list) {
      addTo(t.name, o, t.value, t.rawName);
      collecting = { name: t.name, o, raw: t.rawName };
    } else {
      out.strings[t.name] = t.value;
    }
  }
  if (spec.positionals && out.positionals.length < spec.positionals.min) throw new UsageError(`${cmd} needs ${spec.positionals.metavar} (${see})`);
  return out;
}
