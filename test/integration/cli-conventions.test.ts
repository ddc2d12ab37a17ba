/**
 * What every program shares, as users run them (the built programs in child processes): the
 * version flags, the help's style, the environment variables named in --help and the README, and
 * the reference's flags that bootsmith does not have, named as such.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const programs = Object.keys(pkg.bin);

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit.js'))) throw new Error('dist/ is missing: run "npm run build" (npm test does)');
});

function run(program: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, pkg.bin[program]!), ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test.each(programs)('%s: --version and -V print "NAME VERSION" and exit 0', (program) => {
  for (const flag of ['--version', '-V']) {
    expect(run(program, [flag])).toEqual({ status: 0, stdout: `${program} ${pkg.version}\n`, stderr: '' });
  }
});

test.each(['locksmithctl', 'locksmithd'])('%s -version prints locksmith\'s "NAME version VERSION" (scripts parse it), before anything else is read', (program) => {
  expect(run(program, ['-version'])).toEqual({ status: 0, stdout: `${program} version ${pkg.version}\n`, stderr: '' });
  expect(run(program, ['--endpoint', 'http://127.0.0.1:9', '-version', 'status'])).toEqual({ status: 0, stdout: `${program} version ${pkg.version}\n`, stderr: '' });
});

test.each(programs)('%s: --help in the one style', (program) => {
  const r = run(program, ['--help']);
  expect(r.status).toBe(0);
  expect(r.stderr).toBe('');
  const lines = r.stdout.split('\n');
  expect(lines[0]).toMatch(new RegExp(`^Usage: ${program} \\[options\\]`));
  // The description: a sentence that starts with a capital, without a full stop.
  expect(lines[2]).toMatch(/^[A-Z]/);
  expect(r.stdout).not.toMatch(/^\S.*[^.]\.\n\nOptions:/m);
  // The two shared options, last, worded alike.
  const options = lines.slice(lines.indexOf('Options:') + 1).filter((l) => /^ {2}-/.test(l));
  expect(options.slice(-2).map((l) => l.replace(/\s+/g, ' ').trim())).toEqual(['-V, --version print the version and exit', '-h, --help show this help']);
  expect(r.stdout).not.toContain('display help for command');
  expect(r.stdout).not.toContain('output the version number');
});

/** The variables a program's source reads, by the pattern it reads them with. */
function variablesRead(file: string, pattern: RegExp, name: (m: RegExpExecArray) => string): string[] {
  const source = readFileSync(join(root, 'src/cli', file), 'utf8');
  return [...new Set([...source.matchAll(pattern)].map(name))].sort();
}

const environments = [
  {
    program: 'fleetlockd',
    read: variablesRead('fleetlockd.ts', /\benv\('([A-Z_]+)'\)/g, (m) => `FLEETLOCKD_${m[1]}`),
  },
  {
    program: 'locksmithctl',
    read: variablesRead('locksmithctl.ts', /fromEnv\(io, '([a-z-]+)'\)/g, (m) => `LOCKSMITHCTL_${m[1]!.toUpperCase().replace(/-/g, '_')}`),
  },
];

test.each(environments)('$program: every variable it reads is listed in --help and in the README', ({ program, read }) => {
  expect(read.length).toBeGreaterThanOrEqual(7);
  const help = run(program, ['--help']).stdout;
  const section = help.slice(help.indexOf('\nEnvironment'));
  const listed = [...section.matchAll(/^ {2}([A-Z][A-Z0-9_]+) /gm)].map((m) => m[1]!).sort();
  expect(listed).toEqual(read);
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  expect(read.filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
});

test('locksmithd --help lists the variables it reads', () => {
  const help = run('locksmithd', ['--help']).stdout;
  for (const name of ['REBOOT_STRATEGY', 'LOCKSMITHD_REBOOT_WINDOWS', 'LOCKSMITHD_ENDPOINT', 'LOCKSMITHD_ETCD_CAFILE', 'LOCKSMITHD_RECLAIM_STALE_AFTER']) {
    expect(help).toMatch(new RegExp(`^ {2}${name} `, 'm'));
  }
});

describe('coreos-cloudinit v1.14 flags bootsmith does not have', () => {
  test.each([
    ['-from-metadata-service'],
    ['-workspace=/var/lib/coreos-cloudinit'],
    ['-ignore-failure'],
  ])('%s: named as not supported, exit 2', (...args) => {
    const r = run('coreos-cloudinit', ['--from-file', '/dev/null', ...args]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const flag = args[0]!.split('=')[0];
    expect(r.stderr).toMatch(new RegExp(`^coreos-cloudinit: ${flag} is not supported by bootsmith: .+\\n$`));
  });

  test.each(['gce', 'digitalocean', 'packet'])('-from-%s-metadata=URL, as Go spells it, is read: the service is asked', (cloud) => {
    const r = run('coreos-cloudinit', ['--validate', `-from-${cloud}-metadata=http://127.0.0.1:9/`, '--http-deadline', '300']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^coreos-cloudinit: no datasource answered \(http:\/\/127\.0\.0\.1:9\/\S+: connect ECONNREFUSED .*\(gave up after retrying\)\)\n$/m);
  });

  test('a flag no version of coreos-cloudinit had stays an unknown option; after -- nothing is a flag', () => {
    expect(run('coreos-cloudinit', ['--no-such-flag']).stderr).toMatch(/unknown option '--no-such-flag'/);
    expect(run('coreos-cloudinit', ['--oem', 'nowhere']).stderr).toBe('coreos-cloudinit: --oem nowhere is unknown; supported: ec2-compat, openstack, digitalocean, gce, packet, azure, cloudsigma, vmware, rackspace-onmetal\n');
    expect(run('coreos-cloudinit', ['--validate', '--from-file', '--', '-ignore-failure']).stderr).not.toContain('not supported');
  });
});
