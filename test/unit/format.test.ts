import { formatGithub, formatJson, formatText } from '../../src/report/format';
import type { FileReport } from '../../src/report/format';
import { longFlags } from '../../src/cli/coreos-cloudinit';
import { normalizeGoFlags } from '../../src/cli/options';
import { validateUserData } from '../../src/cloudconfig/validate';

function report(file: string, text: string): FileReport {
  const r = validateUserData(Buffer.from(text));
  return { file, kind: r.kind, text: r.text, diagnostics: r.diagnostics };
}

const bad = report('a.yaml', '#cloud-config\ncoreos:\n  update:\n    reboot-strategy: sometimes\n');

test('text: one line a finding and a summary', () => {
  expect(formatText([bad], () => false)).toBe(
    'a.yaml:4:22: error: invalid value "sometimes" for "reboot_strategy": must be one of etcd-lock, reboot, off [invalid-value]\n' +
      '1 error, 0 warnings, 0 infos in 1 file\n',
  );
  expect(formatText([report('ok.yaml', '#cloud-config\n')], () => false)).toBe('');
});

test('text on a terminal: the source line with a caret under the value', () => {
  const lines = formatText([bad], () => true).split('\n');
  expect(lines[1]).toBe('      reboot-strategy: sometimes');
  expect(lines[2]).toBe(`${' '.repeat(23)}^${'~'.repeat('sometimes'.length - 1)}`);
});

test('json: path and pointer', () => {
  const out = JSON.parse(formatJson([bad], (s) => s === 'error'));
  expect(out.files[0].diagnostics[0]).toMatchObject({ path: 'coreos.update.reboot_strategy', pointer: '/coreos/update/reboot_strategy' });
  expect(out.valid).toBe(false);
});

test('github: properties and data are escaped', () => {
  const r: FileReport = {
    file: 'dir,x/a:b.yaml',
    kind: 'cloud-config',
    text: '',
    diagnostics: [{ severity: 'info', code: 'c', message: '100% done\nnext', path: [], line: 1, column: 2, endLine: 1, endColumn: 3 }],
  };
  expect(formatGithub([r])).toBe('::notice file=dir%2Cx/a%3Ab.yaml,line=1,col=2,endLine=1,endColumn=3,title=cloud-config c::100%25 done%0Anext\n');
});

test('Go-style single-dash flags become double-dash; other arguments stay', () => {
  expect(normalizeGoFlags(['-validate', '-from-file=x', '-', '-h', '--format', 'json', '--', '-validate'], longFlags)).toEqual([
    '--validate',
    '--from-file=x',
    '-',
    '-h',
    '--format',
    'json',
    '--',
    '-validate',
  ]);
});
