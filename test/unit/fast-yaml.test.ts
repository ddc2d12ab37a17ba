/**
 * The fast reader (fast-yaml.ts) must give exactly the full reader's tree whenever it accepts an
 * input, and must accept the plain block YAML that real cloud-config is written in.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseFast } from '../../src/cloudconfig/fast-yaml';
import { parseFully } from '../../src/cloudconfig/parse-yaml';
import { corpusDir } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { generateLargeConfig } = require('../../bench/generate-large.cjs') as { generateLargeConfig(scale: number): string };

const corpus = corpusDir();
const examples = join(__dirname, '../../examples');
const samples = [
  ...readdirSync(corpus).filter((f) => f.endsWith('.yaml')).map((f) => [f, readFileSync(join(corpus, f), 'utf8')] as const),
  ...readdirSync(examples).filter((f) => f.endsWith('.yaml')).map((f) => [f, readFileSync(join(examples, f), 'utf8')] as const),
];

/** Agreement: either the fast reader declines, or both readers give the same tree and no findings. */
function agrees(text: string): boolean {
  const fast = parseFast(text, 1000);
  if (fast === undefined) return false;
  const full = parseFully(text);
  expect(full.findings).toEqual([]);
  expect(fast.root).toEqual(full.root);
  return true;
}

const edgeCases = [
  'a: 1  # c\nb:\nc: |\n  x\n  y\n\nd: >-\n  z\ne:\n  - p\n  -\n  - q: 1\n    r: "s"\nf: [a, "b"]\n',
  'a:\n  b: 1\n\n  # c\nd: 2\n\n# end\n',
  'a:\n  - b\n# c\n  - e\n\nf: |\n  x\n\n\n# trailing\n',
  'k: v\nl: |-\n    deep\n  \n    more\nm: x',
  'a:   # c\n  b: 1\nc:  # x\nd: 1\ne:   \nf:\n  -   # c\n  -  \n  - x',
  "a:\n- x\n- y\nb: \"\"\nc: 'it''s'\n",
  'n: ~\no: null\np: yes\nq: 0644\nr: 0x1F\ns: 1_000\nt: 1:30\nu: 2.5\nv: .inf\nw: 2001-12-14\nx: "\\u00e9\\x41\\n"\ny: {}\nz: []\n',
  'users:\n  - name: a\n    groups: [sudo, docker]\n  - name: b\ncoreos:\n  units:\n  - name: x.service\n    content: |\n      [Unit]\n      A=b # not a comment\n',
  'a: |\n  trailing\n  no newline',
  'a: >\n  folded\n  lines\nb: 1\n',
  'key with spaces: 1\n1: one\nyes: true\n',
  'a: -1\nb: -x\nc: http://x:80/y\nd: a#b\ne: "a: b"\n',
  '  indented: 1\n  root: 2\n',
  '- a\n- b: 1\n  c: 2\n-\n  - nested\n',
  'x: |\n # c\n  ', // spaces past the indentation on a last blank line are content
];

test.each(edgeCases.map((c) => [JSON.stringify(c).slice(0, 60), c]))('edge case %s', (_name, text) => {
  expect(agrees(text)).toBe(true);
});

test('every sample the fast reader accepts reads the same as with the full reader', () => {
  const declined = samples.filter(([, text]) => !agrees(text)).map(([name]) => name);
  // !!binary tags, tabs, a shell script and Ignition JSON: all for the full reader.
  expect(declined).toEqual([
    '11-doc-write-files-encodings.yaml',
    '22-tests-encoding-binary-base64.yaml',
    '23-history-tab-indented-2014.yaml',
    '35-edge-script.yaml',
    '36-edge-ignition.yaml',
  ]);
});

test('the examples and the benchmark config take the fast path', () => {
  for (const f of readdirSync(examples).filter((f) => f.endsWith('.yaml'))) {
    expect([f, parseFast(readFileSync(join(examples, f), 'utf8'), 1000) !== undefined]).toEqual([f, true]);
  }
  expect(agrees(generateLargeConfig(0.02))).toBe(true);
});

test.each([
  ['anchors', 'a: &x 1\nb: *x\n'],
  ['tags', 'a: !!binary aGk=\n'],
  ['duplicate keys', 'a: 1\na: 2\n'],
  ['normalized duplicates', 'a-b: 1\na_b: 2\n'],
  ['multi-line plain', 'a: one\n  two\n'],
  ['multi-line quoted', 'a: "one\n  two"\n'],
  ['keep chomping', 'a: |+\n  x\n\n'],
  ['tabs', 'a:\n\tb: 1\n'],
  ['CRLF', 'a: 1\r\nb: 2\r\n'],
  ['second document', 'a: 1\n---\nb: 2\n'],
  ['flow mapping', 'a: {b: 1}\n'],
  ['nested flow', 'a: [[1]]\n'],
  ['syntax error', 'a: b: c\n'],
  ['merge key', 'a: &m {x: 1}\nb:\n  <<: *m\n'],
])('declines %s', (_name, text) => {
  expect(parseFast(text, 1000)).toBeUndefined();
});

test('declines nesting deeper than the limit', () => {
  const deep = Array.from({ length: 20 }, (_, i) => `${' '.repeat(i)}a:`).join('\n');
  expect(parseFast(deep, 10)).toBeUndefined();
  expect(parseFast(deep, 100)).toBeDefined();
});

const yamlish = fc.array(
  fc.oneof(
    fc.constantFrom('a', 'b', 'name', 'key-x', 'k_y', '1', 'yes', 'x y', 'n', '~', '-1', '.5', '_a', '/p'),
    fc.constantFrom('\t', '\r\n', '&a ', '*a', '!!str ', '? ', '{a: 1}', '"m\n l"', '---', '...', '\\', '%', ',', ']', ' - '),
    fc.constantFrom(': ', ':', '- ', '-', ' ', '  ', '    ', '\n', '\n  ', '\n    ', '\n- ', '# c', ' # c', ' #c', '#'),
    fc.constantFrom('"q"', "'s'", "'i''t'", '"a\\"b"', '"\\u00e9"', '[a, b]', '[ ]', '[]', '{}', '|', '|-', '>', '>-', 'x: |'),
    fc.constantFrom('v1', '0644', 'on', '2.0', 'a#b', 'http://x:1', '2001-01-01'),
  ),
  { maxLength: 50 },
);

test('random YAML-like text: the fast reader agrees or declines', () => {
  let accepted = 0;
  fc.assert(
    fc.property(yamlish, (parts) => {
      if (agrees(parts.join(''))) accepted++;
    }),
    { numRuns: 5000 },
  );
  expect(accepted).toBeGreaterThan(300);
});

// The fast reader types plain scalars with YAML 1.1's patterns written out (not the `yaml`
// package's tags, which it no longer loads): every kind, and random text of the characters
// those patterns turn on, reads as the full reader reads it.
const typedScalars = [
  '', '~', 'null', 'Null', 'NULL', 'nULL', 'y', 'Y', 'yes', 'Yes', 'YES', 'yEs', 'n', 'N', 'no', 'NO', 'true', 'True', 'TRUE', 'tRUE',
  'false', 'False', 'FALSE', 'on', 'On', 'ON', 'oN', 'off', 'Off', 'OFF', '0', '-0', '+0', '00', '0644', '-0644', '0_7', '08', '0b101',
  '-0b1_0', '0b', '0b2', '0x1F', '+0x_f', '0xg', '1_000', '-1_000', '12', '+12', '9007199254740993', '.5', '-.5', '1.', '1.5e3',
  '1e3', '-1E-3', '1_0.0_1', '.e1', '.inf', '-.Inf', '+.INF', '.nan', '.NaN', '.NAN', '-.nan', '1:30', '-1:30', '190:20:30', '1:60',
  '1:5:9.5', '1:30.', '2001-12-14', '2001-12-14t21:59:43.10-05:00', '1.2.3', '1__', '_1', '1-2', '0o17', '1:2:3:4', '+', '.', '<<',
];

test.each(typedScalars)('the plain scalar %j reads as with the full reader', (text) => {
  expect(agrees(`k: ${text}\n`)).toBe(true);
});

test('random plain scalars of digits, signs, dots, colons and letters read as with the full reader', () => {
  let accepted = 0;
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'0123456789+-._:xbeEoOinfaNIlsuTrY'.split('')), maxLength: 9 }), (text) => {
      if (agrees(`k: ${text}\nl: [${text}]\n`)) accepted++;
    }),
    { numRuns: 5000 },
  );
  expect(accepted).toBeGreaterThan(2500);
});
