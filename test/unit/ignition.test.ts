/**
 * Ignition validation: the corpus in test/corpus/ignition (each NAME.ign with the findings in
 * NAME.expected, as LINE:COL SEVERITY CODE PATH), the JSON reader, the schemas against their
 * generator, and the rules one by one.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { validateUserData } from '../../src/cloudconfig/validate';
import { maxJsonDepth, parseJson, rangeInJsonString } from '../../src/cloudconfig/ignition/json';
import { toValue } from '../../src/cloudconfig/ignition/schema-check';
import { supportedVersions } from '../../src/cloudconfig/ignition/fields';
import { dataUrlProblem, hashProblem } from '../../src/cloudconfig/ignition/resources';
import { formatPath } from '../../src/report/diagnostic';
import { formatGithub, formatJson } from '../../src/report/format';

const root = join(__dirname, '../..');
const corpus = join(root, 'test/corpus/ignition');
const samples = readdirSync(corpus).filter((f) => f.endsWith('.ign'));

function findings(text: string): string[] {
  const report = validateUserData(Buffer.from(text));
  expect(report.kind).toBe('ignition');
  return report.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code} ${formatPath(d.path) || '-'}`);
}

/** `code@line:column` of a config given as an object (pretty-printed, two spaces). */
function codes(config: unknown): string[] {
  return validateUserData(Buffer.from(JSON.stringify(config, null, 2))).diagnostics.map((d) => `${d.code}@${d.line}:${d.column}`);
}

describe('the corpus', () => {
  test('holds valid and invalid configs of both spec lines', () => {
    expect(samples.filter((f) => f.includes('valid')).length).toBeGreaterThanOrEqual(5);
    expect(samples.some((f) => f.startsWith('v2_'))).toBe(true);
    expect(samples.some((f) => f.startsWith('spec2'))).toBe(true);
  });

  test.each(samples)('%s gives the expected findings', (sample) => {
    const expected = readFileSync(join(corpus, sample.replace(/\.ign$/, '.expected')), 'utf8').split('\n').filter(Boolean);
    expect(findings(readFileSync(join(corpus, sample), 'utf8'))).toEqual(expected);
  });

  test('every valid sample has no errors', () => {
    for (const sample of samples.filter((f) => f.includes('-valid'))) {
      const errors = validateUserData(readFileSync(join(corpus, sample))).diagnostics.filter((d) => d.severity === 'error');
      expect([sample, errors]).toEqual([sample, []]);
    }
  });
});

describe('schemas', () => {
  test('schemas/ignition-v*.schema.json are what scripts/ignition-schemas.mjs writes', () => {
    const r = spawnSync(process.execPath, [join(root, 'scripts/ignition-schemas.mjs'), '--check'], { encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  test('one schema file for each supported version', () => {
    const files = readdirSync(join(root, 'schemas')).filter((f) => f.startsWith('ignition-v'));
    expect(files.sort()).toEqual(supportedVersions.map((v) => `ignition-v${v.slice(0, 3).replace('.', '_')}.schema.json`).sort());
  });

  test.each([...supportedVersions])('spec %s: the smallest config is valid, and an unknown key is a warning', (version) => {
    expect(codes({ ignition: { version } })).toEqual([]);
    expect(codes({ ignition: { version }, storag: {} })).toEqual(['unknown-key@5:3']);
  });

  test('a key of a later spec version says which version brings it', () => {
    const [d] = validateUserData(Buffer.from('{"ignition": {"version": "3.1.0"}, "storage": {"luks": []}}')).diagnostics;
    expect(d?.code).toBe('unknown-key');
    expect(d?.message).toMatch(/"luks" comes with spec 3\.2\.0/);
  });

  test('optional fields take null, as Ignition does', () => {
    expect(codes({ ignition: { version: '3.4.0', config: null }, storage: { files: [{ path: '/a', mode: null, contents: null }] } })).toEqual([]);
  });

  test('fields arrive with the version that brought them', () => {
    const kargs = { kernelArguments: { shouldExist: ['quiet'] } };
    expect(codes({ ignition: { version: '3.3.0' }, ...kargs })).toEqual([]);
    expect(codes({ ignition: { version: '3.2.0' }, ...kargs })).toEqual(['unknown-key@5:3']);
    const luks = { storage: { luks: [{ name: 'a', device: '/dev/a', discard: true }] } };
    expect(codes({ ignition: { version: '3.4.0' }, ...luks })).toEqual([]);
    expect(codes({ ignition: { version: '3.3.0' }, ...luks })).toEqual(['unknown-key@10:9']);
    const networkd = { networkd: { units: [{ name: 'a.network' }] } };
    expect(codes({ ignition: { version: '2.3.0' }, ...networkd })).toEqual([]);
    expect(codes({ ignition: { version: '3.0.0' }, ...networkd })).toEqual(['unknown-key@5:3']);
  });
});

describe('the JSON reader', () => {
  test('keeps the place of every key and value', () => {
    const text = '{\n  "a": [1, "x\\ny"],\n  "b": {"c": null}\n}';
    const { root, findings } = parseJson(text);
    expect(findings).toEqual([]);
    expect(root?.kind).toBe('map');
    if (root?.kind !== 'map') return;
    const [a, b] = root.pairs;
    expect(text.slice(...a!.keyRange)).toBe('"a"');
    expect(a!.value.kind === 'seq' && a!.value.items.map((i) => text.slice(...i.range))).toEqual(['1', '"x\\ny"']);
    expect(b!.value.kind === 'map' && text.slice(...b!.value.pairs[0]!.value.range)).toBe('null');
  });

  test.each([
    ['{"a": 1,}', 8],
    ['{"a" 1}', 5],
    ['[1 2]', 3],
    ['{"a": tru}', 6],
    ['{"a": "\\x"}', 7],
    ['{"a": 1} x', 9],
    ['', 0],
  ])('%j is a syntax error at offset %i', (text, at) => {
    const { root, findings } = parseJson(text);
    expect(root).toBeUndefined();
    expect(findings.map((f) => [f.code, f.range[0]])).toEqual([['json-syntax', at]]);
  });

  test('deep nesting is an error, not a stack overflow', () => {
    const deep = '['.repeat(maxJsonDepth + 10) + ']'.repeat(maxJsonDepth + 10);
    expect(parseJson(deep).findings.map((f) => f.code)).toEqual(['json-syntax']);
    expect(parseJson('['.repeat(100_000)).findings.map((f) => f.code)).toEqual(['json-syntax']);
  });

  test('a repeated key is a warning; the last one counts, as in Go', () => {
    const { root, findings } = parseJson('{"a": 1, "b": 2, "a": 3}');
    expect(findings.map((f) => [f.code, f.range[0]])).toEqual([['duplicate-key', 17]]);
    expect(toValue(root!)).toEqual({ b: 2, a: 3 });
  });

  test('the repeated key is named by its path', () => {
    expect(parseJson('{"a": [{"b": 1, "b": 2}]}').findings.map((f) => formatPath(f.path))).toEqual(['a[0].b']);
  });

  test('thousands of unknown or repeated keys are each reported, in one pass', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `"k${i % 10_000}": 1`).join(',');
    const report = validateUserData(Buffer.from(`{"ignition": {"version": "3.4.0"}, ${keys}}`));
    const counts: Record<string, number> = {};
    for (const d of report.diagnostics) counts[d.code] = (counts[d.code] ?? 0) + 1;
    expect(counts).toEqual({ 'duplicate-key': 10_000, 'unknown-key': 10_000 });
  });

  test('reads what JSON.parse reads, to the same value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        const text = JSON.stringify(value, null, pretty ? 2 : undefined);
        const { root, findings } = parseJson(text);
        expect(findings).toEqual([]);
        expect(toValue(root!)).toEqual(JSON.parse(text));
      }),
    );
  });

  test('never throws on any text, and fails exactly where JSON.parse fails', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        let ok = true;
        try {
          JSON.parse(text);
        } catch {
          ok = false;
        }
        const parsed = parseJson(text);
        expect(parsed.root !== undefined).toBe(ok);
      }),
    );
  });

  test('places inside a string are mapped back through escapes', () => {
    const text = '{"c": "a\\nb\\u0041c"}';
    const literal: [number, number] = [6, text.length - 1];
    // In the value "a\nbAc", "b" is at 2 and "Ac" at 3..5.
    expect(text.slice(...rangeInJsonString(text, literal, 2, 3))).toBe('b');
    expect(text.slice(...rangeInJsonString(text, literal, 3, 5))).toBe('\\u0041c');
  });
});

describe('classification', () => {
  test.each([
    ['{"ignition": {"version": "3.4.0"}}', 'ignition'],
    ['{"ignition": {}}', 'ignition'],
    ['{"ignitionVersion": 1}', 'ignition'],
    ['{"ignition": {"version": "3.4.0"},}', 'ignition'],
    ['{}', 'unknown'],
    ['[{"ignition": 1}]', 'unknown'],
  ])('%s is %s', (text, kind) => {
    expect(validateUserData(Buffer.from(text)).kind).toBe(kind);
  });
});

describe('rules', () => {
  test('hashes: the function, the size and the digits', () => {
    const v31 = { version: '3.1.0', major: 3, minor: 1 };
    const v30 = { version: '3.0.0', major: 3, minor: 0 };
    expect(hashProblem(`sha512-${'a'.repeat(128)}`, v30)).toBeUndefined();
    expect(hashProblem(`sha256-${'a'.repeat(64)}`, v31)).toBeUndefined();
    expect(hashProblem(`sha256-${'a'.repeat(64)}`, v30)).toMatch(/unrecognized hash function/);
    expect(hashProblem(`sha512-${'a'.repeat(127)}`, v31)).toMatch(/incorrect size/);
    expect(hashProblem('sha512', v31)).toMatch(/malformed/);
  });

  test.each([
    ['data:,hello', undefined],
    ['data:text/plain;charset=utf-8;base64,aGVsbG8=', undefined],
    ['data:;base64,aGVsbG8', 'base64'],
    ['data:hello', ','],
    ['data:,50%', '%'],
    ['data:text;base64,aGk=', 'media type'],
  ])('data URL %s', (url, problem) => {
    const found = dataUrlProblem(url);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });

  test('an enabled unit without [Install] is a warning on its contents; with one, nothing', () => {
    const unit = (contents: string) => ({ ignition: { version: '3.4.0' }, systemd: { units: [{ name: 'a.service', enabled: true, contents }] } });
    expect(codes(unit('[Service]\nExecStart=/bin/a\n'))).toEqual(['enable-without-install@10:21']);
    expect(codes(unit('[Service]\nExecStart=/bin/a\n[Install]\nWantedBy=multi-user.target\n'))).toEqual([]);
  });

  test('unit syntax findings land on the line inside the JSON string', () => {
    const text = '{"ignition": {"version": "3.4.0"}, "systemd": {"units": [{"name": "a.service", "contents": "[Service]\\nbroken\\n"}]}}';
    const [d] = validateUserData(Buffer.from(text)).diagnostics;
    expect(d?.code).toBe('unit-syntax');
    expect(text.slice(d!.column - 1, d!.endColumn - 1)).toBe('broken');
  });

  test('all findings come in one pass, syntax aside', () => {
    const many = codes({
      ignition: { version: '3.4.0' },
      storage: { files: [{ path: 'a', mode: 99999 }] },
      systemd: { units: [{ name: 'x' }] },
      passwd: { users: [{ name: 'Bad User' }] },
    });
    expect(many).toEqual(['relative-path@8:17', 'invalid-mode@9:17', 'unit-name@16:17', 'user-name@23:17']);
  });
});

describe('formats', () => {
  const text = '{"ignition": {"version": "3.4.0"}, "storag": {}}';
  const report = validateUserData(Buffer.from(text));
  const file = { file: 'a.ign', kind: report.kind, text: report.text, diagnostics: report.diagnostics };

  test('json names the kind and the pointer', () => {
    const doc = JSON.parse(formatJson([file], (s) => s === 'error'));
    expect(doc.files[0]).toMatchObject({ kind: 'ignition', valid: true, diagnostics: [{ code: 'unknown-key', pointer: '/storag', line: 1, column: 36 }] });
  });

  test('github annotations are titled ignition', () => {
    expect(formatGithub([file])).toMatch(/^::warning file=a\.ign,line=1,col=36,endLine=1,endColumn=44,title=ignition unknown-key::unused key "storag"; did you mean "storage"\?\n$/);
  });
});
