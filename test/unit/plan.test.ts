/** The planner is pure: settings in, actions out, in the reference's order. */
import { toCloudConfig } from '../../src/cloudconfig/config';
import { validateUserData } from '../../src/cloudconfig/validate';
import { plan } from '../../src/apply/plan';
import type { Action } from '../../src/apply/plan';
import { mergeSettings } from '../../src/system/env-file';
import { unitDirs } from '../../src/system/paths';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6';

function planOf(body: string, live = false): string[] {
  const report = validateUserData(Buffer.from(`#cloud-config\n${body}`));
  expect(report.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return plan(toCloudConfig(report.root), { live, unitDirs, sshKeyName: 'coreos-cloudinit' }).map(describe);
}

function describe(a: Action): string {
  switch (a.kind) {
    case 'file':
      return `file ${a.path} ${a.mode.toString(8)}${a.owner ? ` ${a.owner}` : ''}`;
    case 'mask':
      return `${a.mask ? 'mask' : 'unmask'} ${a.path}`;
    case 'unit-command':
      return `${a.command} ${a.unit}`;
    case 'enable':
      return `enable ${a.unit} in ${a.dir}`;
    case 'user':
      return `user ${a.user.name}`;
    case 'ssh-keys':
      return `ssh-keys ${a.user}`;
    case 'hostname':
      return `hostname ${a.hostname}`;
    default:
      return a.kind;
  }
}

test('the reference order: hostname, users, keys, files, generated files, units, then systemd', () => {
  expect(
    planOf(
      'coreos:\n  units:\n    - name: a.service\n      command: start\n      enable: true\n      content: "[Install]\\nWantedBy=x.target\\n"\n  update:\n    group: beta\n' +
        `write_files:\n  - path: /etc/f\n    permissions: 0600\n    owner: core\nusers:\n  - name: u\n    ssh_authorized_keys: ['${key}']\nssh_authorized_keys: ['${key}']\nhostname: h\n`,
      true,
    ),
  ).toEqual([
    'hostname h',
    'file /etc/hostname 644',
    'user u',
    'ssh-keys core',
    'ssh-keys u',
    'file /etc/f 600 core',
    'update-conf',
    'file /etc/systemd/system/a.service 644',
    'unmask /run/systemd/system/update-engine.service',
    'enable a.service in /etc/systemd/system',
    'start a.service',
    'restart update-engine.service',
  ]);
});

test('under another root the kernel hostname is left alone', () => {
  expect(planOf('hostname: h\n')).toEqual(['file /etc/hostname 644']);
});

test('network units go to networkd, are neither enabled nor commanded, and restart networkd', () => {
  expect(planOf('coreos:\n  units:\n    - name: 10-a.network\n      runtime: true\n      enable: true\n      command: start\n      content: "[Match]\\nName=a\\n"\n')).toEqual([
    'file /run/systemd/network/10-a.network 644',
    'networkd-restart',
  ]);
});

test('mask wins over content; drop-ins go beside the unit', () => {
  expect(planOf('coreos:\n  units:\n    - name: m.service\n      mask: true\n      content: "[Unit]"\n    - name: d.service\n      drop_ins:\n        - name: 1.conf\n          content: "[Service]"\n')).toEqual([
    'mask /etc/systemd/system/m.service',
    'file /etc/systemd/system/d.service.d/1.conf 644',
  ]);
});

test('reboot_strategy off masks and stops locksmithd, together with its drop-in', () => {
  expect(planOf('coreos:\n  locksmith:\n    group: g\n  update:\n    reboot_strategy: "off"\n')).toEqual([
    'update-conf',
    'mask /run/systemd/system/locksmithd.service',
    'stop locksmithd.service',
  ]);
});

test('update.conf: keys replaced in place, others kept, new ones appended sorted', () => {
  expect(mergeSettings('# comment\nGROUP=alpha\nGROUPX=1\n', [['REBOOT_STRATEGY', 'off'], ['GROUP', 'stable'], ['SERVER', 's']])).toBe(
    '# comment\nGROUP=stable\nGROUPX=1\nREBOOT_STRATEGY=off\nSERVER=s\n',
  );
});

// Guards behind validation: /etc/hostname and /etc/hosts get one name, drop-ins stay in their directory.
/** Plans user data without validating it first, as a caller that skipped validation would. */
const unvalidated = (body: string) => () => plan(toCloudConfig(validateUserData(Buffer.from(`#cloud-config\n${body}`)).root), { live: true, unitDirs, sshKeyName: 'coreos-cloudinit' });

test.each([
  ['a newline', 'hostname: "web\\n10.0.0.1 bank.example.com"\nmanage_etc_hosts: localhost\n'],
  ['a space', 'hostname: "web 1"\n'],
  ['a colon', 'hostname: "fd00::1"\n'],
])('a hostname with %s is refused: nothing is planned', (_name, body) => {
  expect(unvalidated(body)).toThrow(/is not a host name.*\/etc\/hostname and \/etc\/hosts are not written/);
});

test.each(['../../../etc/cron.d/x.conf', '/etc/x.conf', 'a/b.conf', '..'])('a drop-in named %s is refused', (name) => {
  expect(unvalidated(`coreos:\n  units:\n    - name: a.service\n      drop_ins:\n        - name: "${name}"\n          content: "[Service]\\n"\n`)).toThrow(/a\.service: drop-in/);
});

test.each([
  ['update.conf', 'coreos:\n  update:\n    group: "alpha\\nSERVER=http://evil.example"\n', /GROUP .*line break/],
  ['a drop-in', 'coreos:\n  etcd2:\n    name: "a\\"\\nExecStartPre=/bin/evil"\n', /ETCD_NAME .*line break/],
])('a service setting that would not stay one line in %s is refused', (_name, body, message) => {
  expect(() => {
    for (const action of unvalidated(body)()) if (action.kind === 'update-conf') mergeSettings('', action.settings);
  }).toThrow(message);
});

test('a service drop-in quotes each value for systemd: a quote or backslash stays in the value', () => {
  const actions = plan(toCloudConfig(validateUserData(Buffer.from('#cloud-config\ncoreos:\n  etcd2:\n    name: \'a"b\\c %H\'\n')).root), { live: false, unitDirs, sshKeyName: 'x' });
  const dropIn = actions.flatMap((a) => (a.kind === 'file' && a.path.endsWith('/etcd2.service.d/20-cloudinit.conf') ? [a.content.toString()] : []));
  expect(dropIn).toEqual(['[Service]\nEnvironment="ETCD_NAME=a\\"b\\\\c %H"\n']);
});

test('settings are written as NAME=value lines', () => {
  expect(mergeSettings('', [['GROUP', 'a b'], ['SERVER', 'https://u.example/?a=1']])).toBe('GROUP=a b\nSERVER=https://u.example/?a=1\n');
  expect(() => mergeSettings('', [['GROUP', 'a\u0000b']])).toThrow(/GROUP .*NUL/);
});

test('a valid hostname gives one line in each file', () => {
  const actions = plan(toCloudConfig(validateUserData(Buffer.from('#cloud-config\nhostname: web-1\nmanage_etc_hosts: localhost\n')).root), { live: false, unitDirs, sshKeyName: 'x' });
  const files = actions.filter((a): a is Extract<Action, { kind: 'file' }> => a.kind === 'file').map((a) => [a.path, a.content.toString()]);
  expect(files).toEqual([
    ['/etc/hostname', 'web-1\n'],
    ['/etc/hosts', '127.0.0.1 web-1 localhost\n::1 web-1 localhost\n'],
  ]);
});
