/**
 * The quick reader of command lines (src/cli/fast-args.ts) against commander, built from the same
 * option table: whenever the quick reader gives options, commander accepts the line and gives the
 * same ones; whenever commander refuses a line, the quick reader declines it. On random command
 * lines over coreos-cloudinit's own options, and over a table with every kind of option.
 */
import { Command, InvalidArgumentError } from 'commander';
import fc from 'fast-check';
import { optionSpecs } from '../../src/cli/coreos-cloudinit';
import { commanderOption, quickParse } from '../../src/cli/fast-args';
import type { OptionSpec } from '../../src/cli/fast-args';
import { parseArgs, standardOptions } from '../../src/cli/options';

/** commander's answer: the options, or undefined when it refused the line (or printed help or the version). */
function commanderParse(argv: string[], specs: readonly OptionSpec[]): Record<string, unknown> | undefined {
  const program = new Command('x').exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  for (const spec of specs) program.addOption(commanderOption(spec));
  standardOptions(program);
  return parseArgs(program, argv) === undefined ? program.opts() : undefined;
}

const number = (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('want a number');
  return Number(v);
};

const everyKind: OptionSpec[] = [
  { flags: '--flag', description: 'a flag' },
  { flags: '--name <value>', description: 'a value' },
  { flags: '--count <n>', description: 'a parsed value with a default', parse: number, default: 7 },
  { flags: '--maybe [value]', description: 'an optional value' },
  { flags: '--files <path...>', description: 'a list' },
  { flags: '--format <format>', description: 'one of', choices: ['text', 'json'], default: 'text' },
];

const values = ['a.yaml', 'b', '-', '', '5', '-5', '0', 'x y', 'json', 'text', 'ignition', '/tmp/r', 'rel/dir', '=', 'a=b'];
const strays = ['--', '-h', '--help', '-V', '--version', '--nope', '-x', 'operand', '--no-flag', '-5'];

/** Random tokens: option names, values, `--name=value`, and what only commander takes. */
function randomLines(specs: readonly OptionSpec[]) {
  const names = specs.map((s) => s.flags.split(' ')[0]!);
  const token = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...names) },
    { weight: 4, arbitrary: fc.constantFrom(...values) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...names), fc.constantFrom(...values)).map(([n, v]) => `${n}=${v}`) },
    { weight: 1, arbitrary: fc.constantFrom(...strays) },
  );
  return fc.array(token, { maxLength: 8 });
}

/**
 * Lines as people write them: options, each with values that mostly fit (its choices, digits for a
 * parsed one), spelled `--name value...` or `--name=value`; now and then a stray token among them.
 */
function plausibleLines(specs: readonly OptionSpec[]) {
  const clean = ['a.yaml', 'b', '-', 'x y', '/tmp/r', 'rel/dir', 'json', 'a=b'];
  const fitting = (spec: OptionSpec) =>
    fc.oneof(
      { weight: 6, arbitrary: spec.choices ? fc.constantFrom(...spec.choices) : spec.parse ? fc.constantFrom('1', '30', '4096', '/mnt') : fc.constantFrom(...clean) },
      { weight: 1, arbitrary: fc.constantFrom(...values) },
    );
  // How many values each kind takes (now and then one too few or too many).
  const counts = (flags: string) => (!flags.includes(' ') ? [0, 0, 0, 0, 1] : flags.includes('[') ? [0, 1, 1, 1, 2] : flags.includes('...') ? [1, 2, 3, 1, 0] : [1, 1, 1, 1, 0, 2]);
  const occurrence = fc
    .constantFrom(...specs)
    .chain((spec) => fc.tuple(fc.constant(spec.flags.split(' ')[0]!), fc.boolean(), fc.constantFrom(...counts(spec.flags)).chain((n) => fc.array(fitting(spec), { minLength: n, maxLength: n }))))
    .map(([name, equals, vals]) => (equals && vals.length === 1 ? [`${name}=${vals[0]}`] : [name, ...vals]));
  return fc
    .tuple(fc.array(occurrence, { maxLength: 6 }), fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.constantFrom(...strays)) }))
    .map(([occurrences, stray]) => {
      const line = occurrences.flat();
      if (stray) line.splice(stray[0] % (line.length + 1), 0, stray[1]);
      return line;
    });
}

test.each([
  ['a table with every kind of option', everyKind],
  ["coreos-cloudinit's options", optionSpecs],
])('%s: the quick reader gives what commander gives, or declines', (_, specs) => {
  fc.assert(
    fc.property(fc.oneof(randomLines(specs), plausibleLines(specs)), (argv) => {
      const quick = quickParse(argv, specs);
      if (quick !== undefined) expect(quick).toEqual(commanderParse(argv, specs));
    }),
    { numRuns: 5000 },
  );
});

test('the command lines of nearly every run are read quickly, with the defaults', () => {
  expect(quickParse(['--validate', '--from-file', 'a.yaml', 'b.yaml'], optionSpecs)).toEqual(commanderParse(['--validate', '--from-file', 'a.yaml', 'b.yaml'], optionSpecs));
  expect(quickParse(['--files', 'a', '--files', 'b', '--format=json', '--count', '3'], everyKind)).toEqual({ files: ['a', 'b'], format: 'json', count: 3 });
  expect(quickParse(['--oem', 'ec2-compat', '--root', '/mnt'], optionSpecs)).toMatchObject({ oem: 'ec2-compat', root: '/mnt', format: 'text' });
});

test('what only commander can answer is declined: help, version, unknown flags, bad values, operands, --', () => {
  for (const argv of [['--help'], ['-V'], ['--nope'], ['--count', 'x'], ['--format', 'yaml'], ['op'], ['--flag', '--'], ['--flag=1'], ['--name'], ['--files']]) {
    expect({ argv, quick: quickParse(argv, everyKind) }).toEqual({ argv, quick: undefined });
  }
});

test('an option table entry whose flags are not of a form the quick reader knows is refused, naming it', () => {
  for (const flags of ['-x', '--', '--Name', '--9name', '--na_me', '--name <v', '--name [v]]', '--name v', '--name <>', '--name  <v>']) {
    expect(() => quickParse([`--${flags.slice(2).split(' ')[0]}`], [{ flags, description: '' }])).toThrow(`option flags ${JSON.stringify(flags)}`);
  }
  expect(quickParse(['--dry-run', '--max-size-2', '3'], [{ flags: '--dry-run', description: '' }, { flags: '--max-size-2 <n>', description: '' }])).toEqual({ dryRun: true, maxSize2: '3' });
});
