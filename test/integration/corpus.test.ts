/**
 * The reference corpus: for each sample our findings match coreos-cloudinit v1.14's on (line,
 * severity, kind of rule), except for the differences documented in docs/validator.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateUserData } from '../../src/cloudconfig/validate';
import { corpusDir } from '../helpers';

const corpus = corpusDir();
const samples = readdirSync(corpus)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.replace(/\.yaml$/, ''));

/** The reference's messages, by the rule that produces them. */
function referenceKind(message: string): string {
  if (message.startsWith('unrecognized key')) return 'unrecognized-key';
  if (message.startsWith('deprecated key')) return 'deprecated';
  if (message.startsWith('incorrect type')) return 'type';
  if (message.startsWith('invalid value')) return 'invalid-value';
  if (message.startsWith('content cannot be decoded')) return 'decode';
  if (message.includes('read-only filesystem')) return 'read-only';
  if (message.startsWith('discovery URL')) return 'discovery-url';
  if (message.includes("doesn't belong under coreos")) return 'write-files-under-coreos';
  if (message.startsWith('must be "#cloud-config"')) return 'header';
  return 'yaml';
}

/** Our codes, mapped onto the reference's kinds; codes the reference has no rule for stay as they are. */
const ourKinds: Record<string, string> = {
  'unknown-key': 'unrecognized-key',
  'deprecated-key': 'deprecated',
  'wrong-type': 'type',
  'empty-value': 'type',
  'invalid-value': 'invalid-value',
  'undecodable-content': 'decode',
  'read-only-path': 'read-only',
  'discovery-url': 'discovery-url',
  'write-files-under-coreos': 'write-files-under-coreos',
  'bad-header': 'header',
  'yaml-syntax': 'yaml',
  'tab-indent': 'yaml',
  'duplicate-key': 'yaml',
};

function expected(sample: string): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync(join(corpus, `${sample}.expected.txt`), 'utf8').split('\n')) {
    const m = /^line (\d+): (error|warning|info): (.*)$/.exec(line);
    if (m) out.add(`${m[1]} ${m[2]} ${referenceKind(m[3]!)}`);
  }
  return out;
}

function ours(sample: string): Set<string> {
  const report = validateUserData(readFileSync(join(corpus, `${sample}.yaml`)));
  return new Set(report.diagnostics.map((d) => `${d.line} ${d.severity} ${ourKinds[d.code] ?? d.code}`));
}

interface Difference {
  sample: string;
  finding: string;
  side: 'ours' | 'reference';
}

function documentedDifferences(): Difference[] {
  const doc = readFileSync(join(__dirname, '../../docs/validator.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Differences from the reference on the corpus'));
  const rows: Difference[] = [];
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 8 || !/^\d\d-/.test(cells[1]!)) continue;
    const [, sample, lineNo, severity, kind, side, reason] = cells;
    expect(reason).not.toBe('');
    rows.push({ sample: sample!, finding: `${lineNo} ${severity} ${kind}`, side: side as Difference['side'] });
  }
  return rows;
}

const differences = documentedDifferences();

test('the differences table is read', () => {
  expect(differences.length).toBeGreaterThan(5);
  for (const d of differences) expect(samples).toContain(d.sample);
});

test.each(samples)('%s', (sample) => {
  const reference = expected(sample);
  const mine = ours(sample);
  const onlyReference = [...reference].filter((f) => !mine.has(f)).sort();
  const onlyOurs = [...mine].filter((f) => !reference.has(f)).sort();
  const documented = (side: Difference['side']) =>
    differences.filter((d) => d.sample === sample && d.side === side).map((d) => d.finding).sort();
  expect({ onlyReference, onlyOurs }).toEqual({ onlyReference: documented('reference'), onlyOurs: documented('ours') });
});
