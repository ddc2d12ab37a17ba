/**
 * A program's options as a table, from which both commander's Command is built and a quick reader
 * of the plain command lines nearly every run has (`--validate --from-file a.yaml b.yaml`).
 * Building commander's Command for 45 options and parsing with it costs about 1.5 ms of a start,
 * a tenth of what validating a file costs over starting Node; the quick reader costs a few
 * hundredths. It takes only what it reads the way commander does and declines everything else
 * (help, version, short flags, `--`, operands, an unknown flag, a value a parser refuses ...):
 * then commander parses the line, with its own messages. test/unit/fast-args.test.ts holds the
 * two to the same answers on random command lines.
 */
import { Option } from 'commander';

/** One option: commander's flags (`--name`, `--name <value>`, `--name [value]`, `--name <value...>`) and the rest. */
export interface OptionSpec {
  flags: string;
  description: string;
  /** Turns the text given into the value (commander's argParser); throws to refuse it. */
  parse?: (value: string) => unknown;
  /** The values allowed (commander's choices). */
  choices?: readonly string[];
  default?: unknown;
}

interface Parsed {
  long: string;
  key: string;
  kind: 'flag' | 'required' | 'optional' | 'variadic';
}

/** Reads `--name`, `--name <value>`, `--name [value]` or `--name <value...>` (by hand: a start-up compiles no pattern for it). */
function parseFlags(flags: string): Parsed {
  const space = flags.indexOf(' ');
  const long = flags.slice(2, space === -1 ? undefined : space);
  const value = space === -1 ? undefined : flags.slice(space + 1);
  if (!flags.startsWith('--') || !isOptionName(long) || (value !== undefined && !isValueName(value))) {
    throw new Error(`option flags ${JSON.stringify(flags)}: want --name, --name <value>, --name [value] or --name <value...>`);
  }
  const kind = value === undefined ? 'flag' : value.startsWith('[') ? 'optional' : value.endsWith('...>') ? 'variadic' : 'required';
  return { long, key: camelCase(long), kind };
}

/** `from-file` -> `fromFile`: each `-` before a letter or digit dropped, and that character upper-cased. */
function camelCase(name: string): string {
  let key = '';
  for (let i = 0; i < name.length; i++) {
    const next = name.charCodeAt(i + 1);
    key += name[i] === '-' && ((next >= 97 && next <= 122) || (next >= 48 && next <= 57)) ? name[++i]!.toUpperCase() : name[i];
  }
  return key;
}

/** `[a-z][a-z0-9-]*` */
function isOptionName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const lower = c >= 97 && c <= 122;
    if (!(lower || (i > 0 && ((c >= 48 && c <= 57) || c === 45)))) return false;
  }
  return name.length > 0;
}

/** `<...>` or `[...]`, with no closing bracket inside. */
function isValueName(value: string): boolean {
  const close = value[0] === '<' ? '>' : value[0] === '[' ? ']' : undefined;
  return close !== undefined && value.length > 2 && value.indexOf(close) === value.length - 1;
}

/** commander's Option for `spec` (commander itself loads on first use: scripts/build.mjs). */
export function commanderOption(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.description);
  if (spec.parse) option.argParser(spec.parse);
  if (spec.choices) option.choices(spec.choices);
  if (spec.default !== undefined) option.default(spec.default);
  return option;
}

/** Each option's flags, read at most once a process. */
const readFlags = new WeakMap<OptionSpec, Parsed>();
function flagsOf(spec: OptionSpec): Parsed {
  let parsed = readFlags.get(spec);
  if (!parsed) readFlags.set(spec, (parsed = parseFlags(spec.flags)));
  return parsed;
}

/** The long name in `flags` (`--from-file <path...>`: `from-file`), read without checking the rest (flagsOf does, when the option is used). */
function longOf(flags: string): string {
  const space = flags.indexOf(' ');
  return flags.slice(2, space === -1 ? undefined : space);
}

/** The long names of `specs` (`from-file` ...). */
export function longNames(specs: readonly OptionSpec[]): string[] {
  return specs.map((s) => longOf(s.flags));
}

/** commander's test for an argument that may be an option. */
const optionLike = (arg: string) => arg.length > 1 && arg[0] === '-';

/**
 * The options of `argv` as commander's `opts()` would give them (defaults included), when argv
 * holds only `--name`, `--name value` and `--name=value` forms of options in `specs`; undefined
 * for anything else.
 */
export function quickParse(argv: readonly string[], specs: readonly OptionSpec[]): Record<string, unknown> | undefined {
  // Each option's flags are read in full only when it has a default or is given: a start reads a
  // few of the table's 45, not all of them.
  const byName = new Map(specs.map((spec) => [longOf(spec.flags), spec]));
  const opts: Record<string, unknown> = {};
  for (const spec of specs) if (spec.default !== undefined) opts[flagsOf(spec).key] = spec.default;
  const take = (spec: OptionSpec, key: string, text: string): boolean => {
    if (spec.choices && !spec.choices.includes(text)) return false;
    try {
      opts[key] = spec.parse ? spec.parse(text) : text;
    } catch {
      return false;
    }
    return true;
  };
  for (let i = 0; i < argv.length; ) {
    const arg = argv[i++]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq === -1 ? undefined : eq) : undefined;
    const spec = name === undefined ? undefined : byName.get(name);
    if (!spec) return undefined;
    const { key, kind } = flagsOf(spec);
    if (eq !== -1) {
      // --name=value: a value of its own, never a list.
      if (kind === 'flag' || kind === 'variadic' || !take(spec, key, arg.slice(eq + 1))) return undefined;
      continue;
    }
    if (kind === 'flag') {
      opts[key] = true;
    } else if (kind === 'optional') {
      const next = argv[i];
      if (next === undefined || optionLike(next)) opts[key] = true;
      else if (!take(spec, key, argv[i++]!)) return undefined;
    } else if (kind === 'required') {
      const next = argv[i];
      if (next === undefined || optionLike(next) || !take(spec, key, argv[i++]!)) return undefined;
    } else {
      // A list: this value and those after it up to the next option, added to what came before.
      if (spec.parse || spec.choices || argv[i] === undefined || optionLike(argv[i]!)) return undefined;
      const values = Array.isArray(opts[key]) ? [...(opts[key] as string[])] : [];
      while (i < argv.length && !optionLike(argv[i]!)) values.push(argv[i++]!);
      opts[key] = values;
    }
  }
  return opts;
}
