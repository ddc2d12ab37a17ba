import { check, codes } from '../helpers';
import { validateUserData } from '../../src/cloudconfig/validate';
import { gzipSync } from 'node:zlib';

describe('user-data classes', () => {
  test.each([
    ['empty', '', 'empty'],
    ['script', '#!/bin/bash\necho hi\n', 'script'],
    ['#!cloud-config is a script', '#!cloud-config\nhostname: x\n', 'script'],
    ['ignition v2', '{"ignition": {"version": "2.2.0"}}', 'ignition'],
    ['ignition v1', '{"ignitionVersion": 0}', 'ignition'],
    ['cloud-config', '#cloud-config\nhostname: a\n', 'cloud-config'],
    ['cloud-config with trailing blanks and CRLF', '#cloud-config  \r\nhostname: a\r\n', 'cloud-config'],
    ['JSON that is not ignition', '{}', 'unknown'],
    ['no header', 'hostname: a\n', 'unknown'],
  ])('%s', (_name, text, kind) => {
    expect(validateUserData(Buffer.from(text)).kind).toBe(kind);
  });

  test('a missing header is one error on line 1', () => {
    expect(codes('hostname: a\n', true)).toEqual(['bad-header@1:1']);
  });

  test('a byte-order mark or leading blank before the header is named', () => {
    expect(check('\uFEFF#cloud-config\n', true)[0]!.message).toMatch(/byte-order mark/);
    expect(check(' #cloud-config\n', true)[0]!.message).toMatch(/exactly "#cloud-config"/);
  });

  test('#!cloud-config warns that it runs as a script', () => {
    expect(codes('#!cloud-config\nhostname: a\n', true)).toEqual(['script-header@1:1']);
  });

  test('gzip is unpacked first; corrupt gzip is an error', () => {
    const good = validateUserData(gzipSync('#cloud-config\nhostname: [a]\n'));
    expect(good.gzipped).toBe(true);
    expect(good.diagnostics.map((d) => `${d.code}@${d.line}`)).toEqual(['wrong-type@2']);
    const bad = Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.from('not gzip at all')]);
    expect(validateUserData(bad).diagnostics.map((d) => d.code)).toEqual(['gzip']);
  });

  test('a gzip bomb stops at the size limit', () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const report = validateUserData(bomb, { maxSize: 1024 * 1024 });
    expect(report.diagnostics.map((d) => d.code)).toEqual(['gzip']);
    expect(report.diagnostics[0]!.message).toMatch(/more than the limit/);
  });
});

describe('keys and types, as the reference judges them', () => {
  test.each([
    ['unknown top-level key', 'test: 1\n', ['unknown-key@2:1']],
    ['unknown nested key', 'coreos:\n  flannel:\n    bad:\n', ['unknown-key@4:5']],
    ['children of unknown keys are not inspected', 'bogus:\n  hostname: [1]\n', ['unknown-key@2:1']],
    ['deprecated section and key', 'coreos:\n  etcd:\n    proxy: hi\n', ['deprecated-key@3:3', 'deprecated-key@4:5']],
    ['units that are not mappings', 'coreos:\n  units:\n    - hello\n    - goodbye\n', ['wrong-type@4:7', 'wrong-type@5:7']],
    ['a bool field with a number', 'coreos:\n  units:\n    - enable: 4\n', ['unit-name@4:7', 'wrong-type@4:15']],
    ['hostname as a number or bool is fine', 'hostname: 4\n', []],
    ['hostname true is fine', 'hostname: true\n', []],
    ['hostname as a mapping', 'hostname:\n  name: x\n', ['wrong-type@2:1']],
    ['hostname with no value', 'hostname:\n', ['empty-value@2:1']],
    ['coreos as a scalar', 'coreos: true\n', ['wrong-type@2:9']],
    ['ssh keys as a mapping', 'ssh_authorized_keys:\n  a: b\n', ['wrong-type@2:1']],
    ['a mapping in a list of strings', 'ssh_authorized_keys:\n  - key: value\n', ['wrong-type@3:5']],
    ['users as a scalar', 'users: bad\n', ['wrong-type@2:8']],
    ['a user that is not a mapping', 'users:\n  - name: hi\n  - true\n', ['wrong-type@4:5']],
    ['groups as a comma string', 'users:\n  - name: bob\n    groups: sudo,docker\n', ['wrong-type@4:13']],
    ['int field with a float', 'coreos:\n  fleet:\n    verbosity: 2.5\n', ['deprecated-key@3:3', 'wrong-type@4:16']],
    ['int field with 2.0', 'coreos:\n  fleet:\n    verbosity: 2.0\n', ['deprecated-key@3:3', 'wrong-type@4:16']],
    ['int field with a quoted number', 'coreos:\n  etcd2:\n    heartbeat_interval: "100"\n', ['deprecated-key@3:3', 'wrong-type@4:25']],
    ['YAML 1.1 ints are ints', 'coreos:\n  fleet:\n    verbosity: 0x1F\n    token_limit: 1_000\n', ['deprecated-key@3:3']],
    ['float field takes an int', 'coreos:\n  fleet:\n    engine_reconcile_interval: 2\n', ['deprecated-key@3:3']],
    ['bool field with 1', 'coreos:\n  etcd2:\n    debug: 1\n', ['deprecated-key@3:3', 'wrong-type@4:12']],
    ['bool field with a quoted true', 'coreos:\n  units:\n    - mask: "true"\n', ['unit-name@4:7', 'wrong-type@4:13']],
    ['YAML 1.1 bools', 'coreos:\n  units:\n    - name: a.service\n      mask: yes\n      enable: off\n      runtime: Y\n', []],
    ['keys are case-sensitive', 'Hostname: a\n', ['unknown-key@2:1']],
    ['a top-level list is not cloud-config', '- a\n- b\n', ['wrong-type@2:1']],
  ])('%s', (_name, body, expected) => {
    expect(codes(body)).toEqual(expected);
  });

  test('- and _ are the same in keys, at every depth', () => {
    expect(codes('write-files:\n  - path: /tmp/x\ncoreos:\n  update:\n    reboot-strategy: off\n')).toEqual([]);
    expect(codes('users:\n  - name: bob\n    lock-passwd: true\n')).toEqual(['unknown-key@4:5']);
    expect(check('users:\n  - name: bob\n    lock-passwd: true\n')[0]!.message).toMatch(/"lock_passwd"/);
  });

  test('unknown keys get a "did you mean"', () => {
    const msg = (body: string) => check(body).map((d) => d.message);
    expect(msg('ssh_authorised_keys: []\n')[0]).toMatch(/did you mean "ssh_authorized_keys"\?/);
    expect(msg('write-file: []\n')[0]).toMatch(/did you mean "write_files"\?/);
    expect(msg('reboot-strategy: off\n')[0]).toMatch(/belongs under coreos\.update/);
    expect(msg('coreos:\n  reboot-strategy: off\n')[0]).toMatch(/belongs under coreos\.update/);
    expect(msg('users:\n  - name: a\n    pasword: x\n')[0]).toMatch(/did you mean "passwd"\?/);
    expect(msg('coreos:\n  unit: []\n')[0]).toMatch(/did you mean "units"\?/);
    expect(msg('completely_unrelated: 1\n')[0]).not.toMatch(/did you mean|belongs/);
  });

  test('write_files under coreos is an unknown key and an info', () => {
    expect(codes('coreos:\n  write_files:\n    - path: /hi\n')).toEqual(['unknown-key@3:3', 'write-files-under-coreos@3:3']);
  });
});

describe('values', () => {
  test.each([
    ['reboot strategy false', 'coreos:\n  update:\n    reboot-strategy: false\n', ['invalid-value@4:22']],
    ['reboot strategy off stays "off"', 'coreos:\n  update:\n    reboot-strategy: off\n', []],
    ['best-effort is gone in v1.14', 'coreos:\n  update:\n    reboot_strategy: best-effort\n', ['invalid-value@4:22']],
    ['unit command', 'coreos:\n  units:\n    - command: lol\n', ['unit-name@4:7', 'invalid-value@4:16']],
    ['unit command is case-sensitive', 'coreos:\n  units:\n    - name: a.service\n      command: Start\n', ['invalid-value@5:16']],
    ['etcd2 proxy on is text', 'coreos:\n  etcd2:\n    proxy: on\n', ['deprecated-key@3:3']],
    ['etcd2 proxy yes', 'coreos:\n  etcd2:\n    proxy: yes\n', ['deprecated-key@3:3', 'invalid-value@4:12']],
    ['window start', 'coreos:\n  locksmith:\n    window_start: sUn 23:59\n', []],
    ['window start out of range', 'coreos:\n  locksmith:\n    window_start: 24:00\n', ['invalid-value@4:19']],
    ['window start with a long weekday', 'coreos:\n  locksmith:\n    window_start: Sunday 04:00\n', ['invalid-value@4:19']],
    ['window length', 'coreos:\n  locksmith:\n    window_length: 1h30m\n', []],
    ['window length in words', 'coreos:\n  locksmith:\n    window_length: 1 hour\n', ['invalid-value@4:20']],
    ['an empty value is not checked against the enum', 'coreos:\n  update:\n    reboot_strategy: ""\n', []],
    ['no value: one finding', 'coreos:\n  update:\n    reboot_strategy:\n', ['empty-value@4:5']],
    ['a list where an enum string goes: one finding', 'coreos:\n  units:\n    - name: a.service\n      command: [start]\n', ['wrong-type@5:7']],
  ])('%s', (_name, body, expected) => {
    expect(codes(body)).toEqual(expected);
  });

  test.each(['0644', '"0644"', '644', '1777', '07777', "'0744'"])('permissions %s are valid', (p) => {
    expect(codes(`write_files:\n  - path: /tmp/x\n    permissions: ${p}\n`)).toEqual([]);
  });

  test.each(['"u+x"', '0800', '64', '0o644', '384'])('permissions %s are invalid', (p) => {
    expect(codes(`write_files:\n  - path: /tmp/x\n    permissions: ${p}\n`)).toEqual(['invalid-value@4:18']);
  });
});

describe('write_files', () => {
  test.each([
    ['under /usr', '  - path: /usr/invalid\n', ['read-only-path@3:11']],
    ['under /usr after cleaning', '  - path: /tmp/../usr/invalid\n', ['read-only-path@3:11']],
    ['not under /usr', '  - path: /tmp/usr/valid\n', []],
    ['/usrlocal is not /usr', '  - path: /usrlocal/x\n', []],
    ['relative', '  - path: etc/x\n', ['relative-path@3:11']],
    ['repeated path', '  - path: /etc/a\n  - path: /etc/./a\n', ['duplicate-path@4:11']],
    ['owner forms', '  - path: /a\n    owner: core\n  - path: /b\n    owner: core:core\n  - path: /c\n    owner: "0:0"\n  - path: /d\n    owner: ":wheel"\n', []],
    ['bad owner', '  - path: /a\n    owner: "core core"\n', ['owner-syntax@4:12']],
    ['base64 content', '  - path: /a\n    encoding: b64\n    content: aGVsbG8K\n', []],
    ['bad base64 content', '  - path: /a\n    encoding: base64\n    content: "!!!"\n', ['undecodable-content@5:14']],
    ['!!binary decoded once already', '  - path: /a\n    encoding: base64\n    content: !!binary aGVsbG8K\n', ['undecodable-content@5:23']],
    ['double base64 through !!binary', '  - path: /a\n    encoding: base64\n    content: !!binary YUdWc2JHOEsK\n', []],
    ['gzip+base64', `  - path: /a\n    encoding: gzip+base64\n    content: ${Buffer.from(require('node:zlib').gzipSync('hi')).toString('base64')}\n`, []],
    ['gzip that is not gzip', '  - path: /a\n    encoding: gz\n    content: plain\n', ['undecodable-content@5:14']],
    ['unknown encoding is reported once', '  - path: /a\n    encoding: custom\n    content: hello\n', ['invalid-value@4:15']],
  ])('%s', (_name, body, expected) => {
    expect(codes(`write_files:\n${body}`)).toEqual(expected);
  });

  test('read-only path message names the path', () => {
    expect(check('write_files:\n  - path: /usr/lib/x\n')[0]!.message).toMatch('/usr/lib/x cannot be written');
  });
});

describe('users and SSH keys', () => {
  const ed25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 me@host';
  test.each([
    ['valid user', `users:\n  - name: core2\n    passwd: $6$salt$abc\n    ssh_authorized_keys:\n      - ${ed25519}\n`, []],
    ['invalid name', 'users:\n  - name: "bad name"\n', ['user-name@3:11']],
    ['numeric name', 'users:\n  - name: "1234"\n', ['user-name@3:11']],
    ['non-portable name warns', 'users:\n  - name: Bob.Smith\n', ['user-name@3:11']],
    ['no name', 'users:\n  - gecos: x\n', ['user-name@3:5']],
    ['repeated user', 'users:\n  - name: a\n  - name: a\n', ['duplicate-user@4:11']],
    ['plain-text password', 'users:\n  - name: a\n    passwd: hunter2\n', ['plain-password@4:13']],
    ['locked password', 'users:\n  - name: a\n    passwd: "!"\n', []],
    ['DES hash', 'users:\n  - name: a\n    passwd: abJnggxhB/yWI\n', []],
    ['truncated key', 'ssh_authorized_keys:\n  - ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0g+ZTxC7weoIJLUafOgrm+h...\n', ['ssh-key@3:5']],
    ['not a key', 'ssh_authorized_keys:\n  - hello world\n', ['ssh-key@3:5']],
    ['key type mismatch', `ssh_authorized_keys:\n  - ${ed25519.replace('ssh-ed25519', 'ssh-rsa')}\n`, ['ssh-key@3:5']],
    ['key with options', `ssh_authorized_keys:\n  - 'no-pty,command="echo a b" ${ed25519}'\n`, []],
  ])('%s', (_name, body, expected) => {
    expect(codes(body)).toEqual(expected);
  });

  test('a user name warning is not an error', () => {
    expect(check('users:\n  - name: Bob.Smith\n')[0]!.severity).toBe('warning');
  });
});

describe('units', () => {
  const unit = (name: string, content: string, extra = '') =>
    `coreos:\n  units:\n    - name: ${name}\n${extra}      content: |\n${content
      .split('\n')
      .map((l) => (l ? `        ${l}` : ''))
      .join('\n')}\n`;

  test('a good unit', () => {
    expect(codes(unit('a.service', '[Unit]\nDescription=A\n\n[Service]\nExecStart=/bin/true \\\n  --flag\n\n[Install]\nWantedBy=multi-user.target', '      enable: true\n'))).toEqual([]);
  });

  test.each([
    ['no suffix', unit('etcd', '[Unit]'), ['unit-name@4:13']],
    ['unknown suffix', unit('etcd.serivce', '[Unit]'), ['unit-name@4:13']],
    ['template instance', unit('getty@tty1.service', '[Unit]'), []],
    ['a line that is not an assignment', unit('a.service', '[Unit]\nDescription A'), ['unit-syntax@7:9']],
    ['assignment before a section', unit('a.service', 'Description=A\n[Unit]'), ['unit-syntax@6:9']],
    ['bad section header', unit('a.service', '[Unit\nA=b'), ['unit-syntax@6:9']],
    ['unknown section', unit('a.service', '[Servce]\nExecStart=/bin/true'), ['unknown-section@6:9']],
    ['X- sections are fine', unit('a.service', '[X-Fleet]\nMachineOf=b'), []],
    ['network sections', unit('a.network', '[Match]\nName=eth0\n\n[Network]\nDHCP=yes'), []],
    ['service section in a network unit', unit('a.network', '[Service]\nA=b'), ['unknown-section@6:9']],
    ['enable without [Install]', unit('a.service', '[Service]\nExecStart=/bin/true', '      enable: true\n'), ['enable-without-install@5:15']],
  ])('%s', (_name, body, expected) => {
    expect(codes(body)).toEqual(expected);
  });

  test('duplicate unit names and drop-in checks', () => {
    const body =
      'coreos:\n  units:\n    - name: a.service\n    - name: a.service\n      drop_ins:\n        - name: 10-x\n          content: |\n            [Service]\n            Environment=A=1\n            bogus line\n';
    expect(codes(body)).toEqual(['duplicate-unit@5:13', 'drop-in-name@7:17', 'unit-syntax@11:13']);
  });
});

describe('YAML', () => {
  test('all syntax errors in one pass, and no bogus type finding', () => {
    const ds = check('a: [1, 2\nb:\n\tc: 1\nd: "unterminated\n');
    expect(ds.filter((d) => d.severity === 'error').length).toBeGreaterThan(1);
    expect(ds.every((d) => d.line > 0)).toBe(true);
    expect(ds.some((d) => d.code === 'wrong-type')).toBe(false);
  });

  test('tabs in indentation', () => {
    expect(codes('coreos:\n\tunits: []\n')).toContain('tab-indent@3:1');
  });

  test('duplicate keys, spelt the same or with - and _', () => {
    expect(codes('hostname: a\nhostname: b\n')).toEqual(['duplicate-key@3:1']);
    expect(codes('coreos:\n  update:\n    reboot-strategy: off\n    reboot_strategy: reboot\n')).toEqual(['duplicate-key@5:5']);
  });

  test('anchors, aliases and merge keys are resolved', () => {
    expect(codes('x-base: &b\n  command: start\ncoreos:\n  units:\n    - <<: *b\n      name: a.service\n')).toEqual(['unknown-key@2:1']);
    expect(codes('coreos:\n  units:\n    - &u {name: a.service, command: bogus}\n    - *u\n')).toEqual(['duplicate-unit@4:17', 'invalid-value@4:37', 'invalid-value@4:37']);
  });

  test('a later document is ignored, with a warning', () => {
    expect(codes('hostname: a\n---\nhostname: [b]\n')).toEqual(['extra-document@3:1']);
  });

  test('positions point at the key or value itself', () => {
    const [d] = check('coreos:\n  units:\n    - name: a.service\n      command: nope\n');
    expect(d).toMatchObject({ line: 5, column: 16, endLine: 5, endColumn: 20, path: ['coreos', 'units', 0, 'command'] });
  });
});

describe('metadata variables', () => {
  test.each([
    ['known', 'hostname: $private_ipv4\n', []],
    // (what is not substituted stays in the hostname, which is then no host name)
    ['escaped', 'hostname: \\$privat_ipv4\n', ['hostname-syntax@2:11']],
    ['shell variables are left alone', 'write_files:\n  - path: /a\n    content: echo $HOME $1 ${PATH}\n', []],
    ['near miss', 'hostname: $private_ip\n', ['hostname-syntax@2:11', 'unknown-variable@2:11']],
    ['run-on name', 'hostname: $private_ipv4x\n', ['hostname-syntax@2:11', 'unknown-variable@2:11']],
    ['braces', 'hostname: ${public_ipv4}\n', ['hostname-syntax@2:11', 'unknown-variable@2:11']],
    ['local ipv4 is EC2 wording', 'hostname: $local_ipv4\n', ['hostname-syntax@2:11', 'unknown-variable@2:11']],
  ])('%s', (_name, body, expected) => {
    expect(codes(body)).toEqual(expected);
  });
});

describe('values written as lines or ids (issue 12)', () => {
  test.each([
    ['a newline in a quoted hostname', 'hostname: "web\\n127.0.0.1 evil"\n', ['hostname-syntax@2:11']],
    ['a space', 'hostname: "web 1"\n', ['hostname-syntax@2:11']],
    ['an underscore', 'hostname: web_1\n', ['hostname-syntax@2:11']],
    ['a label too long', `hostname: ${'a'.repeat(64)}.example\n`, ['hostname-syntax@2:11']],
    ['a leading hyphen', 'hostname: -web\n', ['hostname-syntax@2:11']],
    ['a plain name', 'hostname: web-1\n', []],
    ['a domain name', 'hostname: web-1.example.com\n', []],
    ['digits', 'hostname: 1234\n', []],
    ['a metadata variable, checked once substituted', 'hostname: $private_ipv4\n', []],
  ])('hostname: %s', (_name, body, expected) => {
    expect(codes(body)).toEqual(expected);
  });

  test.each([
    ['uid 2^32-1 is -1 to chown', '"4294967295"', ['owner-id-range@4:12']],
    ['gid 2^32-1', '"core:4294967295"', ['owner-id-range@4:12']],
    ['a group alone', '":99999999999"', ['owner-id-range@4:12']],
    ['the largest id', '"4294967294:4294967294"', []],
    ['names', 'core:core', []],
  ])('owner: %s', (_name, owner, expected) => {
    expect(codes(`write_files:\n  - path: /a\n    owner: ${owner}\n`)).toEqual(expected);
  });

  test.each([
    ['a newline in update.group', 'coreos:\n  update:\n    group: "alpha\\nSERVER=http://evil.example"\n', ['setting-value@4:12']],
    ['a carriage return in etcd2.discovery; a quote is fine', 'coreos:\n  etcd2:\n    name: \'a"\'\n    discovery: "x\\ry"\n', ['setting-value@5:16']],
    ['a carriage return in locksmith.group', 'coreos:\n  locksmith:\n    group: "a\\rb"\n', ['setting-value@4:12']],
    ['plain values', 'coreos:\n  update:\n    group: alpha\n    server: https://u.example/v1/update/\n  locksmith:\n    window_start: Sun 5:00\n', []],
  ])('service setting: %s', (_name, body, expected) => {
    expect(codes(body).filter((c) => c.startsWith('setting-value'))).toEqual(expected);
  });

  test.each([
    ['a path', 'a/b.conf', ['drop-in-name@6:17']],
    ['a parent', '../../../etc/cron.d/x.conf', ['drop-in-name@6:17']],
    ['absolute', '/etc/x.conf', ['drop-in-name@6:17']],
    ['dot-dot', '..', ['drop-in-name@6:17']],
    ['a file name', '50-x.conf', []],
  ])('drop-in name: %s', (_name, name, expected) => {
    const body = `coreos:\n  units:\n    - name: a.service\n      drop_ins:\n        - name: "${name}"\n          content: "[Service]\\nA=1\\n"\n`;
    const found = check(body);
    expect(found.map((d) => `${d.code}@${d.line}:${d.column}`)).toEqual(expected);
    expect(found.every((d) => d.severity === 'error')).toBe(true);
  });
});
