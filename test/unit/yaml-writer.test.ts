/**
 * src/cloudconfig/yaml-writer.ts: whatever it writes, the `yaml` package reads back as the same
 * data, as YAML 1.1 and as YAML 1.2 (Butane's reader is a 1.2 one; ours read 1.1).
 */
import fc from 'fast-check';
import { parse } from 'yaml';
import { toYaml } from '../../src/cloudconfig/yaml-writer';
import type { YamlData } from '../../src/cloudconfig/yaml-writer';

/** Reads back as YAML 1.1 and 1.2; `modes`: written in octal (0644), which YAML 1.2 reads as decimal, so 1.1 only. */
function readsBack(data: { [key: string]: YamlData }, modes = false): void {
  const text = toYaml(data);
  for (const version of modes ? (['1.1'] as const) : (['1.1', '1.2'] as const)) {
    expect({ version, data: parse(text, { version, uniqueKeys: true }) as unknown }).toEqual({ version, data });
  }
}

const tricky = [
  '', ' ', 'a', 'yes', 'No', 'on', 'OFF', 'y', 'n', 'true', 'null', '~', '0644', '0o17', '0x1F', '1_000', '12', '-3', '+3', '1.5', '.5', '1e3', 'e3',
  '.inf', '.nan', '1:30', '2001-12-14', '1.0.0', '- a', '-a', '? a', ':a', 'a: b', 'a:b', 'a:', 'a #b', 'a#b', '#a', '&a', '*a', '!a', '|', '>', "'", '"',
  '%a', '@a', '`a', '[a]', '{a}', 'a, b', 'data:,%FF%FE', '$6$s$h', 'a b', ' a', 'a ', 'a\tb', 'tab\t', 'é', '😀', '\u2028', 'a\u0085b', '\ufeffa',
  'one\ntwo\n', 'one\ntwo', 'one\n\n\n', '  indented\nnext\n', '\n\nlater\n', '\tx\ny\n', 'a\r\nb\n', 'a\n  \n', 'x\n\u0007\n', '\n', '\n\n', 'ends with space \n',
  '---\n', '...\nx\n', '- item\n', '# comment\n', 'key: value\nother: "q"\n',
];

test.each(tricky.map((s) => [JSON.stringify(s), s]))('the string %s reads back, as a value, a key, a list item and a mode-like key', (_name, s) => {
  readsBack({ value: s, list: [s, s], nested: { inline: s }, [s]: 'as a key', mode: s });
});

test('numbers, booleans, modes in octal, empty lists and maps', () => {
  readsBack({ mode: 0o644 }, true);
  readsBack({ other: 420, zero: 0, negative: -5, fraction: 1.5, yes: true, no: false, none: null, empty: [], nothing: {} });
  expect(toYaml({ mode: 0o640, files: [{ path: '/etc/t', mode: 0o644 }] })).toBe('mode: 0640\nfiles:\n  - path: /etc/t\n    mode: 0644\n');
});

test('block layout: lists under their key, a list item\'s map after the dash, contents as literal blocks', () => {
  const text = toYaml({ storage: { files: [{ path: '/etc/t', contents: { inline: 'line one\nline two\n' } }] }, units: [] });
  expect(text).toBe('storage:\n  files:\n    - path: /etc/t\n      contents:\n        inline: |\n          line one\n          line two\nunits: []\n');
});

const text = fc.string({ unit: fc.constantFrom(...'ab \t\n:#-?,[]{}&*!|>\'"%@`~.0123456789eEyYnNoOtTfF\r\u0085\u2028é😀'.split(/(?:)/u)), maxLength: 20 });
const data: fc.Arbitrary<YamlData> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.boolean(), fc.constant(null), tie('list'), tie('map')),
  list: fc.array(tie('value'), { maxLength: 3 }),
  map: fc.dictionary(text, tie('value'), { maxKeys: 3 }),
})).value as fc.Arbitrary<YamlData>;

test('random data reads back the same', () => {
  fc.assert(
    fc.property(fc.dictionary(text, data, { maxKeys: 4 }), (d) => readsBack(d as { [key: string]: YamlData })),
    { numRuns: 3000 },
  );
});
