/**
 * Converting cloud-config to Ignition and Butane: the mapping section by section, the warnings
 * (code and place) for what has no equivalent, and for every output that our Ignition validator
 * takes it without errors and that the Butane text reads back as the same config.
 */
import { gunzipSync } from 'node:zlib';
import { parse } from 'yaml';
import { validateUserData, placeFindings } from '../../src/cloudconfig/validate';
import { validateIgnition } from '../../src/cloudconfig/ignition/validate';
import { convertUserData, platforms, supersededByConversion } from '../../src/cloudconfig/ignition/convert';
import { butaneConfig, dataUrl, formatButane, formatIgnition, ignitionConfig } from '../../src/cloudconfig/ignition/render';
import { splitVariables, substitute } from '../../src/cloudconfig/substitute';

interface IgnFile {
  path: string;
  mode?: number;
  overwrite?: boolean;
  user?: { id?: number; name?: string };
  group?: { id?: number; name?: string };
  contents: { source: string; compression?: string };
}
interface IgnUnit {
  name: string;
  enabled?: boolean;
  mask?: boolean;
  contents?: string;
  dropins?: Array<{ name: string; contents: string }>;
}
interface Ign {
  ignition: { version: string };
  passwd?: { users: Array<Record<string, unknown> & { name: string }> };
  storage?: { files: IgnFile[] };
  systemd?: { units: IgnUnit[] };
}

/** The bytes of a data URL (percent-encoded or base64). */
function decodeDataUrl(url: string): Buffer {
  const comma = url.indexOf(',');
  const data = url.slice(comma + 1);
  if (url.slice(0, comma).endsWith(';base64')) return Buffer.from(data, 'base64');
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    if (data[i] === '%') {
      out.push(parseInt(data.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(data.charCodeAt(i));
  }
  return Buffer.from(out);
}

/**
 * Converts a cloud-config body (header added): the Ignition config, the findings as
 * `code@line:column`, and the file contents by path. Every conversion is held to the
 * invariants: valid Ignition 3.3.0, and Butane that reads back as the same config.
 */
function convert(body: string, platform?: string) {
  const report = validateUserData(Buffer.from(`#cloud-config\n${body}`));
  expect(report.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const conversion = convertUserData(report, { platform });
  const json = formatIgnition(conversion);
  const errors = validateIgnition(json).findings.filter((f) => f.severity === 'error');
  expect(errors).toEqual([]);
  expect(parse(formatButane(conversion), { version: '1.1' })).toEqual(butaneConfig(conversion));
  const ignition = JSON.parse(json) as Ign;
  const files = new Map((ignition.storage?.files ?? []).map((f) => [f.path, f]));
  const content = (path: string) => {
    const f = files.get(path);
    if (!f) return undefined;
    const bytes = decodeDataUrl(f.contents.source);
    return (f.contents.compression === 'gzip' ? gunzipSync(bytes) : bytes).toString('utf8');
  };
  const unit = (name: string) => ignition.systemd?.units.find((u) => u.name === name);
  const findings = placeFindings(conversion.findings, report.text).map((d) => `${d.code}@${d.line}:${d.column}`);
  return { ignition, files, content, unit, findings, conversion };
}

describe('users and SSH keys', () => {
  test('each user with its fields; ssh_authorized_keys go to core', () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnHNVBe0dY0D6eG9hJcRUYvN5Sr8j3yz5eUfA1Zb2kq a@b';
    const r = convert(
      `ssh_authorized_keys:\n  - ${key}\nusers:\n  - name: elroy\n    passwd: $6$salt$hash\n    groups: [sudo, docker]\n    homedir: /home/e\n    no_create_home: true\n    gecos: Elroy\n    primary_group: staff\n    shell: /bin/zsh\n    system: true\n    no_user_group: true\n    no_log_init: true\n    ssh_authorized_keys:\n      - ${key}\n`,
    );
    expect(r.ignition.passwd!.users).toEqual([
      {
        name: 'elroy',
        passwordHash: '$6$salt$hash',
        sshAuthorizedKeys: [key],
        gecos: 'Elroy',
        homeDir: '/home/e',
        noCreateHome: true,
        primaryGroup: 'staff',
        groups: ['sudo', 'docker'],
        noUserGroup: true,
        system: true,
        noLogInit: true,
        shell: '/bin/zsh',
      },
      { name: 'core', sshAuthorizedKeys: [key] },
    ]);
    expect(r.findings).toEqual(['ssh-keys-file@2:1', 'ssh-keys-file@16:5']);
  });

  test('what lands elsewhere than coreos-cloudinit put it is an info at its key, naming the place (the round trip\'s allowances)', () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnHNVBe0dY0D6eG9hJcRUYvN5Sr8j3yz5eUfA1Zb2kq a';
    const r = convert(`ssh_authorized_keys: ["${key}"]\ncoreos:\n  update:\n    group: beta\n  locksmith:\n    group: web\n  flannel:\n    etcd_prefix: /net\n`);
    const infos = r.conversion.findings.map((f) => [f.severity, f.code, f.path.join('.'), f.message]);
    expect(infos).toEqual([
      ['info', 'ssh-keys-file', 'ssh_authorized_keys', expect.stringContaining('~/.ssh/authorized_keys.d/ignition')],
      ['info', 'update-conf', 'coreos.update', expect.stringContaining('/etc/flatcar/update.conf')],
      ['info', 'update-conf', 'coreos.locksmith', expect.stringContaining('/etc/flatcar/update.conf')],
      ['info', 'wrapper-drop-in', 'coreos.flannel', expect.stringContaining('flanneld.service in the drop-in 20-clct-flannel.conf')],
    ]);
    expect(r.findings).toEqual(['ssh-keys-file@2:1', 'update-conf@4:3', 'update-conf@6:3', 'wrapper-drop-in@8:3']);
  });

  test('core in users and in ssh_authorized_keys is one user; a key given twice is listed once', () => {
    const a = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnHNVBe0dY0D6eG9hJcRUYvN5Sr8j3yz5eUfA1Zb2kq a';
    const r = convert(`ssh_authorized_keys: ["${a}"]\nusers:\n  - name: core\n    groups: [docker]\n    ssh_authorized_keys: ["${a}"]\n`);
    expect(r.ignition.passwd!.users).toEqual([{ name: 'core', groups: ['docker'], sshAuthorizedKeys: [a] }]);
  });

  test('keys imported from GitHub or a URL are a warning on the key', () => {
    const r = convert('users:\n  - name: elroy\n    coreos-ssh-import-github: elroy\n');
    expect(r.findings).toContain('unconverted-ssh-import@4:5');
    expect(r.ignition.passwd!.users).toEqual([{ name: 'elroy' }]);
  });
});

describe('files', () => {
  test('hostname and manage_etc_hosts are files', () => {
    const r = convert('hostname: node1\nmanage_etc_hosts: localhost\n');
    expect(r.content('/etc/hostname')).toBe('node1\n');
    expect(r.content('/etc/hosts')).toBe('127.0.0.1 node1 localhost\n::1 node1 localhost\n');
    expect(r.files.get('/etc/hostname')).toMatchObject({ mode: 0o644, overwrite: true });
    expect(r.findings).toEqual([]);
  });

  test('manage_etc_hosts without a hostname is a warning', () => {
    expect(convert('manage_etc_hosts: localhost\n').findings).toEqual(['unconverted-etc-hosts@2:19']);
  });

  test('encodings, owners and modes', () => {
    const gz = Buffer.from('H4sIAKgdh1QAAwtITM5WyK1USMqvUCjPLMlQSMssS1VIya9KzVPIySwszS9SyCpNLwYARQFQ5CcAAAA=', 'base64');
    const text = gunzipSync(gz).toString();
    const r = convert(
      'write_files:\n' +
        '  - path: /etc/plain\n    content: "a b%\\n"\n    owner: core:docker\n    permissions: "0600"\n' +
        `  - path: /etc/gz\n    encoding: gzip+base64\n    content: ${gz.toString('base64')}\n    owner: "500:501"\n` +
        '  - path: /etc/b64\n    encoding: b64\n    content: aGVsbG8K\n' +
        '  - path: etc/relative\n    content: x\n    owner: root:0\n',
    );
    expect(r.files.get('/etc/plain')).toEqual({ path: '/etc/plain', overwrite: true, mode: 0o600, user: { name: 'core' }, group: { name: 'docker' }, contents: { source: 'data:,a%20b%25%0A' } });
    expect(r.files.get('/etc/gz')).toMatchObject({ mode: 0o644, user: { id: 500 }, group: { id: 501 }, contents: { compression: 'gzip' } });
    expect(r.content('/etc/gz')).toBe(text);
    expect(r.content('/etc/b64')).toBe('hello\n');
    expect(r.content('/etc/relative')).toBe('x');
    // root is Ignition's default owner: not written.
    expect(r.files.get('/etc/relative')).toEqual({ path: '/etc/relative', overwrite: true, mode: 0o644, contents: { source: 'data:,x' } });
  });

  test('files under /tmp, and setuid, setgid and sticky bits, are warnings', () => {
    const r = convert('write_files:\n  - path: /tmp/x\n    content: x\n  - path: /etc/d\n    permissions: "1777"\n');
    expect(r.findings).toEqual(['unconverted-tmp-file@3:11', 'unconverted-mode@6:18']);
    expect([...r.files.keys()]).toEqual(['/etc/d']);
    expect(r.files.get('/etc/d')!.mode).toBe(0o777);
  });

  test('a path under /etc/coreos is written under /etc/flatcar, with an info', () => {
    const r = convert('write_files:\n  - path: /etc/coreos/update.conf\n    content: "GROUP=beta\\nFOO=1\\n"\ncoreos:\n  update:\n    group: stable\n');
    expect(r.findings).toEqual(['flatcar-path@3:11', 'update-conf@6:3']);
    expect(r.content('/etc/flatcar/update.conf')).toBe('GROUP=stable\nFOO=1\n');
  });

  test('a path written twice: the later entry wins, as when applying', () => {
    const r = convert('write_files:\n  - path: /etc/a\n    content: one\n  - path: /etc/a\n    content: two\n');
    expect(r.ignition.storage!.files.length).toBe(1);
    expect(r.content('/etc/a')).toBe('two');
  });
});

describe('update and locksmith', () => {
  test('are lines of /etc/flatcar/update.conf, the reboot window with its LOCKSMITHD_ prefix', () => {
    const r = convert(
      'coreos:\n  update:\n    reboot-strategy: etcd-lock\n    group: beta\n    server: https://u.example.com/v1/update/\n' +
        '  locksmith:\n    endpoint: http://10.0.0.1:2379\n    window-start: Thu 04:00\n    window-length: 1h\n',
    );
    expect(r.content('/etc/flatcar/update.conf')).toBe(
      'REBOOT_STRATEGY=etcd-lock\nGROUP=beta\nSERVER=https://u.example.com/v1/update/\nLOCKSMITHD_ENDPOINT=http://10.0.0.1:2379\n' +
        'LOCKSMITHD_REBOOT_WINDOW_START="Thu 04:00"\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\n',
    );
    expect(r.unit('locksmithd.service')).toBeUndefined();
    expect(r.findings).toEqual(['update-conf@3:3', 'update-conf@7:3']);
  });

  test('a value with a line break is not converted: validation refuses it (it would add a line)', () => {
    const report = validateUserData(Buffer.from('#cloud-config\ncoreos:\n  update:\n    group: "beta\\nSERVER=http://evil"\n'));
    expect(report.diagnostics.map((d) => `${d.code}@${d.line}:${d.column}`)).toEqual(['setting-value@4:12']);
  });
});

describe('units', () => {
  test('content, enable, mask and drop-ins', () => {
    const r = convert(
      'coreos:\n  units:\n' +
        '    - name: a.service\n      enable: true\n      content: |\n        [Service]\n        ExecStart=/bin/true\n\n        [Install]\n        WantedBy=multi-user.target\n' +
        '    - name: b.service\n      mask: true\n' +
        '    - name: docker.service\n      drop-ins:\n        - name: 50-x.conf\n          content: |\n            [Service]\n            Environment=A=1\n',
    );
    expect(r.ignition.systemd!.units).toEqual([
      { name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n' },
      { name: 'b.service', mask: true },
      { name: 'docker.service', dropins: [{ name: '50-x.conf', contents: '[Service]\nEnvironment=A=1\n' }] },
    ]);
    expect(r.findings).toEqual([]);
  });

  test('command: start is enabled, with an [Install] section added when the content has none (an info)', () => {
    const r = convert('coreos:\n  units:\n    - name: a.service\n      command: start\n      content: |\n        [Service]\n        ExecStart=/bin/true\n    - name: b.timer\n      command: start\n      content: "[Timer]\\nOnCalendar=daily\\n"\n    - name: stock.service\n      command: start\n');
    expect(r.unit('a.service')).toEqual({ name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n' });
    expect(r.unit('b.timer')!.contents).toMatch(/\[Install\]\nWantedBy=timers.target\n$/);
    expect(r.unit('stock.service')).toEqual({ name: 'stock.service', enabled: true });
    expect(r.findings).toEqual(['install-added@5:16', 'install-added@10:16']);
  });

  test('validation\'s findings that the conversion answers are superseded: etcd2\'s deprecation, and an [Install] section that was added', () => {
    const body = 'coreos:\n  etcd2:\n    name: a\n    ca-file: /ca.pem\n  units:\n    - name: a.service\n      enable: true\n      command: start\n      content: "[Service]\\nExecStart=/bin/true\\n"\n';
    const report = validateUserData(Buffer.from(`#cloud-config\n${body}`));
    const conversion = convert(body).conversion;
    const kept = report.diagnostics.filter((d) => !supersededByConversion(d, conversion)).map((d) => `${d.code}@${d.line}:${d.column}`);
    expect(report.diagnostics.map((d) => d.code)).toEqual(['deprecated-key', 'deprecated-key', 'enable-without-install']);
    expect(kept).toEqual(['deprecated-key@5:5']);
  });

  test('command: stop and restart are warnings at the command', () => {
    const r = convert('coreos:\n  units:\n    - name: a.service\n      command: stop\n    - name: systemd-networkd.service\n      command: restart\n');
    expect(r.findings).toEqual(['unconverted-command@5:16', 'unconverted-command@7:16']);
    expect(r.ignition.systemd).toBeUndefined();
  });

  test('networkd units are files under /etc/systemd/network; runtime units last (an info)', () => {
    const r = convert('coreos:\n  units:\n    - name: 00-eth0.network\n      runtime: true\n      content: "[Match]\\nName=eth0\\n"\n');
    expect(r.content('/etc/systemd/network/00-eth0.network')).toBe('[Match]\nName=eth0\n');
    expect(r.unit('00-eth0.network')).toBeUndefined();
    expect(r.findings).toEqual(['runtime-unit@5:16']);
  });

  test('a drop-in for etcd2.service, which Flatcar does not have, is a warning', () => {
    const r = convert('coreos:\n  units:\n    - name: etcd2.service\n      drop-ins:\n        - name: 30-x.conf\n          content: "[Service]\\nEnvironment=A=1\\n"\n');
    expect(r.findings).toEqual(['missing-unit@4:13']);
  });
});

describe('etcd2, flannel, etcd and fleet', () => {
  const etcd2 = 'coreos:\n  etcd2:\n    # use $public_ipv4 across regions\n    name: node001\n    advertise-client-urls: "http://$public_ipv4:2379"\n    listen-peer-urls: "http://$private_ipv4:2380"\n';

  test('etcd2 is a drop-in for etcd-member.service, its metadata variables from the platform\'s agent', () => {
    const r = convert(etcd2, 'ec2');
    expect(r.unit('etcd-member.service')).toEqual({
      name: 'etcd-member.service',
      enabled: true,
      dropins: [
        {
          name: '20-clct-etcd-member.conf',
          contents:
            '[Unit]\nRequires=coreos-metadata.service\nAfter=coreos-metadata.service\n\n[Service]\nEnvironmentFile=/run/metadata/flatcar\nExecStart=\n' +
            'ExecStart=/usr/lib/flatcar/etcd-wrapper $ETCD_OPTS \\\n  --advertise-client-urls="http://${COREOS_EC2_IPV4_PUBLIC}:2379" \\\n' +
            '  --listen-peer-urls="http://${COREOS_EC2_IPV4_LOCAL}:2380" \\\n  --name="node001"\n',
        },
      ],
    });
    expect(r.findings).toEqual(['wrapper-drop-in@3:3']);
  });

  test('without --platform each variable is a warning where it is (not in comments), and stays as written', () => {
    const r = convert(etcd2);
    expect(r.findings).toEqual(['wrapper-drop-in@3:3', 'needs-platform@6:36', 'needs-platform@7:31']);
    expect(r.unit('etcd-member.service')!.dropins![0]!.contents).toContain('--listen-peer-urls="http://$$private_ipv4:2380"');
    expect(r.unit('etcd-member.service')!.dropins![0]!.contents).not.toContain('Requires=');
  });

  test('a variable the platform has not is a warning', () => {
    expect(convert('coreos:\n  etcd2:\n    listen-peer-urls: "http://[$private_ipv6]:2380"\n', 'ec2').findings).toEqual(['wrapper-drop-in@3:3', 'unconverted-variable@4:32']);
  });

  test('flannel is a drop-in for flanneld.service; values are quoted for systemd', () => {
    const r = convert('coreos:\n  flannel:\n    etcd_prefix: "/coreos.com/network2"\n    interface: "a\\"b%$c"\n');
    expect(r.unit('flanneld.service')!.dropins).toEqual([
      {
        name: '20-clct-flannel.conf',
        contents: '[Service]\nExecStart=\nExecStart=/usr/lib/flatcar/flannel-wrapper $FLANNEL_OPTS \\\n  --etcd-prefix="/coreos.com/network2" \\\n  --iface="a\\"b%%$$c"\n',
      },
    ]);
  });

  test('etcd (0.4) and fleet are warnings at their keys, their variables with them', () => {
    const r = convert('coreos:\n  etcd:\n    addr: $public_ipv4:4001\n  fleet:\n    public-ip: $public_ipv4\n');
    expect(r.findings).toEqual(['unconverted-etcd@3:3', 'unconverted-fleet@5:3']);
    expect(r.ignition.systemd).toBeUndefined();
  });
});

describe('metadata variables in units and files', () => {
  const unit =
    'coreos:\n  units:\n    - name: a.service\n      content: |\n        [Service]\n        Environment=ADDR=$private_ipv4\n        ExecStart=/bin/echo \\\n          $private_ipv4 \\$public_ipv4\n';

  test('in Exec lines of a service they become the agent\'s variables, and the unit waits for the agent', () => {
    const r = convert(unit, 'gce');
    const a = r.unit('a.service')!;
    expect(a.contents).toBe('[Service]\nEnvironment=ADDR=$private_ipv4\nExecStart=/bin/echo \\\n  ${COREOS_GCE_IP_LOCAL_0} $public_ipv4\n');
    expect(a.dropins).toEqual([
      { name: '20-coreos-metadata.conf', contents: '[Unit]\nRequires=coreos-metadata.service\nAfter=coreos-metadata.service\n\n[Service]\nEnvironmentFile=/run/metadata/flatcar\n' },
    ]);
    // Environment= is not expanded by systemd: a warning there, none for the escaped one.
    expect(r.findings).toEqual(['unconverted-variable@7:26']);
  });

  test('in file contents and elsewhere they are warnings', () => {
    const r = convert('hostname: h\nwrite_files:\n  - path: /etc/ip\n    content: "IP=$private_ipv4"\ncoreos:\n  locksmith:\n    endpoint: "http://$private_ipv4:2379"\n', 'ec2');
    expect(r.findings).toEqual(['unconverted-variable@5:18', 'update-conf@7:3', 'unconverted-variable@8:23']);
    expect(r.content('/etc/ip')).toBe('IP=$private_ipv4');
  });

  test('every platform maps $private_ipv4', () => {
    for (const platform of platforms) {
      const r = convert('coreos:\n  etcd2:\n    listen-peer-urls: "http://$private_ipv4:2380"\n', platform);
      expect([platform, r.findings]).toEqual([platform, ['wrapper-drop-in@3:3']]);
    }
  });
});

describe('large user data', () => {
  test('near the 2 MiB limit, many variables, lines and drop-ins convert in linear steps (a quadratic one would not finish in the test\'s time)', () => {
    const lines = Array.from({ length: 18000 }, (_, i) => `        ExecStartPre=/bin/echo ${i} $private_ipv4`).join('\n');
    const dropIns = Array.from({ length: 8000 }, (_, i) => `        - name: ${i}.conf\n          content: "[Service]\\nEnvironment=A=$public_ipv4\\n"`).join('\n');
    const files = Array.from({ length: 8000 }, (_, i) => `  - path: /etc/f${i}\n    content: "$private_ipv4"`).join('\n');
    const body = `write_files:\n${files}\ncoreos:\n  units:\n    - name: a.service\n      content: |\n        [Service]\n${lines}\n      drop-ins:\n${dropIns}\n`;
    const report = validateUserData(Buffer.from(`#cloud-config\n${body}`));
    expect(report.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const conversion = convertUserData(report, { platform: 'ec2' });
    expect(conversion.units[0]!.dropins.length).toBe(8001);
    expect(conversion.findings.filter((f) => f.code === 'unconverted-variable').length).toBe(16000);
    expect(conversion.units[0]!.contents!.split('${COREOS_EC2_IPV4_LOCAL}').length).toBe(18001);
  });
});

describe('other user data', () => {
  test('a script: an empty config and a warning on its first line', () => {
    const report = validateUserData(Buffer.from('#!/bin/bash\necho hi\n'));
    const conversion = convertUserData(report);
    expect(placeFindings(conversion.findings, report.text).map((d) => `${d.code}@${d.line}:${d.column}`)).toEqual(['unconverted-script@1:1']);
    expect(ignitionConfig(conversion)).toEqual({ ignition: { version: '3.3.0' } });
    expect(formatButane(conversion)).toBe('variant: flatcar\nversion: 1.0.0\n');
  });

  test('empty user data: an empty config', () => {
    const conversion = convertUserData(validateUserData(Buffer.alloc(0)));
    expect(conversion).toEqual({ users: [], files: [], units: [], findings: [] });
  });
});

describe('Butane output', () => {
  test('text inline, modes in octal, binary and gzip as data URLs, names in snake_case', () => {
    const r = convert(
      'users:\n  - name: a\n    passwd: "$6$s$h"\n    homedir: /home/a\nwrite_files:\n  - path: /etc/t\n    permissions: "0640"\n    content: |\n      line one\n      line two\n' +
        '  - path: /etc/bin\n    encoding: base64\n    content: //79\n  - path: /etc/z\n    encoding: gzip+base64\n    content: H4sIAOC3tVQAA8tIzcnJ5wIAIDA6NgYAAAA=\n',
    );
    const butane = formatButane(r.conversion);
    expect(butane).toContain('variant: flatcar\nversion: 1.0.0\n');
    expect(butane).toContain('      password_hash: $6$s$h\n      home_dir: /home/a\n');
    expect(butane).toContain('    - path: /etc/t\n      overwrite: true\n      mode: 0640\n      contents:\n        inline: |\n          line one\n          line two\n');
    expect(butane).toContain('        source: data:,%FF%FE%FD\n');
    expect(butane).toMatch(/- path: \/etc\/z\n {6}overwrite: true\n {6}mode: 0644\n {6}contents:\n {8}source: "?data:;base64,[^\n]+\n {8}compression: gzip\n/);
  });
});

describe('data URLs and variables', () => {
  test('percent-encoding, or base64 when shorter; both decode to the bytes', () => {
    expect(dataUrl(Buffer.from('a b\n'))).toBe('data:,a%20b%0A');
    const binary = Buffer.from([0, 1, 2, 255, 254, 253, 128, 129, 130]);
    expect(dataUrl(binary)).toBe(`data:;base64,${binary.toString('base64')}`);
    for (const bytes of [Buffer.alloc(0), binary, Buffer.from('ünïcode #?%&=\r\n\t"\'')]) expect(decodeDataUrl(dataUrl(bytes))).toEqual(bytes);
  });

  test('splitVariables undoes escapes as substitution does', () => {
    expect(splitVariables('a $private_ipv4 \\$public_ipv4 $private_ipv4x')).toEqual(['a ', { variable: 'private_ipv4', index: 2 }, ' ', '$public_ipv4', ' $private_ipv4x']);
    expect(substitute('$private_ipv4$public_ipv4', { private_ipv4: '10.0.0.1' as never, public_ipv4: '1.2.3.4' as never })).toBe('10.0.0.11.2.3.4');
    expect(substitute('x=\\$private_ipv4 y=$private_ipv4', {})).toBe('x=$private_ipv4 y=');
  });
});
