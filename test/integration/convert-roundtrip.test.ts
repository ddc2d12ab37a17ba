/**
 * The round trip's oracle (issue 16): for every corpus file that converts (../shared/corpus/validate)
 * and every example, applying the cloud-config into one root and its converted Ignition into
 * another gives the same files, modes, owners, directories, unit links and users, except where a
 * finding of the conversion says otherwise. `allowances` below lists those exceptions, each tied
 * to the code of the finding that announces it; a difference no finding announces fails the test.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { corpusDir } from '../helpers';
import { asRoot, makeRoot, snapshot } from '../support/roots';

const root = join(__dirname, '../..');
const bin = join(root, 'bin/coreos-cloudinit.js');
const dir = mkdtempSync(join(tmpdir(), 'bootsmith-roundtrip-'));

/** Which side of the round trip: the cloud-config applied, or its Ignition. */
type Side = 'cloud-config' | 'ignition';

/**
 * The differences a conversion announces, each with the code of its finding. `moved`: what the
 * cloud-config puts at the first path, the Ignition puts at the second (same content, mode and
 * owner). `differs`: the path may differ or exist on one side only. `changed`: a file on both
 * sides, with the same mode and owner, whose texts are related so. `fails`: applying that side
 * reports a failed action.
 */
type Allowance = { code: string; why: string } & (
  | { moved: [RegExp, string] }
  | { differs: RegExp }
  | { changed: (cloudConfig: string, ignition: string) => boolean }
  | { fails: Side }
);

const allowances: Allowance[] = [
  // Flatcar's /etc/coreos is a link to /etc/flatcar, and Ignition writes no path through a link.
  { code: 'flatcar-path', why: 'write_files under /etc/coreos go to /etc/flatcar', moved: [/^\/etc\/coreos(\/.*)?$/, '/etc/flatcar$1'] },
  { code: 'update-conf', why: 'coreos.update: update.conf is written under /etc/flatcar', moved: [/^\/etc\/coreos(\/update\.conf)?$/, '/etc/flatcar$1'] },
  // locksmith's settings join update.conf's lines (REBOOT_WINDOW_* with the LOCKSMITHD_ prefix), instead of a drop-in.
  { code: 'update-conf', why: 'coreos.locksmith: lines of update.conf', differs: /^\/etc\/flatcar\/update\.conf$/ },
  { code: 'update-conf', why: 'coreos.locksmith: no drop-in for locksmithd', differs: /^\/run\/systemd\/system\/locksmithd\.service\.d(\/20-cloudinit\.conf)?$/ },
  // Ignition's SSH keys file has its own name; both are merged into authorized_keys, which must match.
  { code: 'ssh-keys-file', why: 'authorized_keys.d/ignition', moved: [/^(.*\/\.ssh\/authorized_keys\.d\/)coreos-cloudinit$/, '$1ignition'] },
  // Ignition runs once, at first boot: runtime units are written to last, under /etc.
  { code: 'runtime-unit', why: 'runtime units under /etc/systemd', moved: [/^\/run\/systemd\/(system|network)(\/.*)?$/, '/etc/systemd/$1$2'] },
  // etcd2 and flannel: flags of the wrappers' units in a drop-in (enabled), not environment of etcd2.service or /run/flannel/options.env.
  { code: 'wrapper-drop-in', why: 'etcd2\'s environment drop-in', differs: /^\/run\/systemd\/system\/etcd2\.service\.d(\/20-cloudinit\.conf)?$/ },
  { code: 'wrapper-drop-in', why: 'flannel\'s options.env', differs: /^\/run\/flannel(\/options\.env)?$/ },
  { code: 'wrapper-drop-in', why: 'the wrappers\' drop-ins', differs: /^\/etc\/systemd\/system\/(etcd-member|flanneld)\.service\.d(\/20-clct-(etcd-member|flannel)\.conf)?$/ },
  { code: 'wrapper-drop-in', why: 'the wrappers enabled', differs: /^\/etc\/systemd\/system\/multi-user\.target\.wants\/(etcd-member|flanneld)\.service$/ },
  // command: start becomes enabled: the unit gains an [Install] section and its link.
  { code: 'install-added', why: 'the unit with [Install] added', changed: (a, b) => b.startsWith(a.replace(/\n*$/, '\n')) && /^\n\[Install\]\nWantedBy=(multi-user|timers|sockets|paths)\.target\n$/.test(b.slice(a.replace(/\n*$/, '\n').length)) },
  { code: 'install-added', why: 'its enablement link', differs: /^\/etc\/systemd\/system\/[^/]+\.target\.wants(\/[^/]+)?$/ },
  // Variables Ignition cannot fill stay as written; offline, the cloud-config's become empty.
  { code: 'unconverted-variable', why: 'a variable kept as written', changed: (a, b) => a !== b && b.replace(/\$(private|public)_ipv[46]/g, '') === a },
  // Sections and files with no Ignition equivalent: only the cloud-config writes them.
  { code: 'unconverted-etcd', why: 'etcd 0.4\'s drop-in', differs: /^\/run\/systemd\/system\/etcd\.service\.d(\/20-cloudinit\.conf)?$/ },
  { code: 'unconverted-fleet', why: 'fleet\'s drop-in', differs: /^\/run\/systemd\/system\/fleet\.service\.d(\/20-cloudinit\.conf)?$/ },
  { code: 'unconverted-tmp-file', why: 'files under /tmp', differs: /^\/tmp(\/.*)?$/ },
  { code: 'unconverted-script', why: 'the script, kept to run', differs: /^\/var\/lib\/coreos-cloudinit\/scripts(\/[^/]+)?$/ },
  { code: 'unconverted-script', why: 'the script cannot run in a bare root', fails: 'cloud-config' },
  // A unit Flatcar does not ship (etcd2.service): enabling it fails where its file is missing (Ignition
  // itself only writes a preset line, which systemd ignores for a unit that is not there).
  { code: 'missing-unit', why: 'enabling a unit that is not there', fails: 'ignition' },
];

/** The allowances some file needed: an entry no file needs is one too many. */
const used = new Set<Allowance>();

/** The units a Flatcar image ships that conversions enable or configure, with [Install] sections as there. */
const vendorUnits = ['etcd-member.service', 'flanneld.service', 'locksmithd.service', 'update-engine.service'];

function flatcarRoot(): string {
  const r = makeRoot();
  mkdirSync(join(r, 'usr/lib/systemd/system'), { recursive: true });
  for (const unit of vendorUnits) writeFileSync(join(r, 'usr/lib/systemd/system', unit), `[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n`);
  return r;
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A tree as path -> "mode uid:gid content", the account files without their content (compared by entry). */
function tree(r: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of snapshot(r)) {
    const [path, mode, owner, ...rest] = line.split(' ');
    const accounts = /^\/etc\/(passwd|group|shadow|gshadow)$/.test(path!);
    out.set(path!.replace(/\/$/, ''), [mode, owner, ...(accounts ? [] : rest)].join(' ') + (path!.endsWith('/') ? '/' : ''));
  }
  return out;
}

/** The entries of an account file by name, each a record of its fields. */
function accounts(r: string, file: string, fields: string[]): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const line of readFileSync(join(r, 'etc', file), 'utf8').split('\n').filter(Boolean)) {
    const values = line.split(':');
    out.set(values[0]!, Object.fromEntries(fields.map((f, i) => [f, values[i] ?? ''])));
  }
  return out;
}

/** shadow's last change is the day of the apply: the two applies may fall on either side of midnight (UTC). */
function sameDay(field: string, a: string | undefined, b: string | undefined): boolean {
  return field === 'lastChange' && a !== undefined && b !== undefined && /^\d+$/.test(a) && /^\d+$/.test(b) && Math.abs(Number(a) - Number(b)) <= 1;
}

const accountFiles: Array<[string, string[]]> = [
  ['passwd', ['name', 'password', 'uid', 'gid', 'gecos', 'home', 'shell']],
  ['shadow', ['name', 'hash', 'lastChange', 'min', 'max', 'warn', 'inactive', 'expire', 'reserved']],
  ['group', ['name', 'password', 'gid', 'members']],
  ['gshadow', ['name', 'password', 'admins', 'members']],
];

/** A regular file's mode and owner, and its content (base64 in the snapshot) as text. */
function regular(meta: string): { head: string; text: string } | undefined {
  const fields = meta.split(' ');
  if (fields.length !== 3 || meta.endsWith('/')) return undefined;
  return { head: `${fields[0]} ${fields[1]}`, text: Buffer.from(fields[2]!, 'base64').toString('utf8') };
}

/** A path's entry for a message: its content as text. */
function shown(meta: string): string {
  const file = regular(meta);
  return (file ? `${file.head} ${JSON.stringify(file.text)}` : meta).slice(0, 300);
}

/** Converts and applies one file both ways; the differences no finding of the conversion announces. */
function roundTrip(file: string): string[] | undefined {
  const converted = run(['--convert-to', 'ignition', '--format', 'json', '--from-file', file]);
  if (converted.status !== 0 && converted.status !== 1) return undefined;
  const report = JSON.parse(converted.stderr) as { files: Array<{ diagnostics: Array<{ code: string }> }> };
  const codes = new Set(report.files[0]!.diagnostics.map((d) => d.code));
  const ign = join(dir, `${file.split('/').pop()}.ign`);
  writeFileSync(ign, converted.stdout);
  const rootA = flatcarRoot();
  const rootB = flatcarRoot();
  const applied = { 'cloud-config': run(['--from-file', file, '--root', rootA]), ignition: run(['--from-file', ign, '--root', rootB]) };
  const applies = (a: Allowance) => codes.has(a.code) && (used.add(a), true);
  const unexplained: string[] = [];
  for (const side of ['cloud-config', 'ignition'] as const) {
    const { status, stdout, stderr } = applied[side];
    if (status === 0) continue;
    if (status === 1 && allowances.some((a) => 'fails' in a && a.fails === side && applies(a))) continue;
    unexplained.push(`applying the ${side}: exit ${status}\n${stdout}${stderr}`);
  }

  const a = tree(rootA);
  const b = tree(rootB);
  // The cloud-config's tree with the announced moves made, remembering where each path came from.
  const moved = new Map<string, string>();
  const from = new Map<string, string>();
  for (const [path, meta] of a) {
    const move = allowances.find((m) => 'moved' in m && m.moved[0].test(path) && applies(m));
    const to = move && 'moved' in move ? path.replace(move.moved[0], move.moved[1]) : path;
    moved.set(to, meta);
    from.set(to, path);
  }
  // What an allowance accounts for, on each side, as the paths of that side's own tree.
  const movedPaths = [...from].filter(([to, was]) => to !== was);
  const accounted = { 'cloud-config': movedPaths.map(([, was]) => was), ignition: movedPaths.map(([to]) => to) };
  const explained = (path: string, side: Side) => {
    const own = side === 'cloud-config' ? (from.get(path) ?? path) : path;
    const ok = allowances.some((x) => 'differs' in x && (x.differs.test(path) || x.differs.test(own)) && applies(x));
    if (ok) accounted[side].push(own);
    return ok;
  };
  // A directory on one side only is checked last: it is explained by what it holds.
  const oneSidedDirectories: Array<[string, Side, string]> = [];
  for (const path of new Set([...moved.keys(), ...b.keys()])) {
    const [inA, inB] = [moved.get(path), b.get(path)];
    if (inA === inB) continue;
    if (inA !== undefined && inB !== undefined) {
      const [fileA, fileB] = [regular(inA), regular(inB)];
      const related = fileA && fileB && fileA.head === fileB.head && allowances.some((x) => 'changed' in x && x.changed(fileA.text, fileB.text) && applies(x));
      if (related || explained(path, 'cloud-config')) continue;
      unexplained.push(`${path}: cloud-config ${shown(inA)}, ignition ${shown(inB)}`);
      continue;
    }
    const side: Side = inA !== undefined ? 'cloud-config' : 'ignition';
    const meta = (inA ?? inB)!;
    if (meta.endsWith('/')) oneSidedDirectories.push([side === 'cloud-config' ? (from.get(path) ?? path) : path, side, meta]);
    else if (!explained(path, side)) unexplained.push(`${path}: only the ${side}'s: ${shown(meta)}`);
  }
  for (const [path, side, meta] of oneSidedDirectories) {
    if (!accounted[side].some((p) => p.startsWith(`${path}/`)) && !explained(path, side)) unexplained.push(`${path}/: only the ${side}'s: ${meta}`);
  }

  // The users the config names (core too where it gives keys), and every group, field by field.
  const config = (parse(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
  const names = new Set(((config.users ?? []) as Array<{ name?: unknown }>).map((u) => String(u.name)));
  if (config.ssh_authorized_keys ?? config['ssh-authorized-keys']) names.add('core');
  for (const [name, fields] of accountFiles) {
    const [entriesA, entriesB] = [accounts(rootA, name, fields), accounts(rootB, name, fields)];
    const wanted = name.startsWith('g') ? [...new Set([...entriesA.keys(), ...entriesB.keys()])] : [...names];
    for (const entry of wanted) {
      const [ea, eb] = [entriesA.get(entry), entriesB.get(entry)];
      for (const field of fields) {
        if (ea?.[field] === eb?.[field] || sameDay(field, ea?.[field], eb?.[field])) continue;
        unexplained.push(`/etc/${name} ${entry}.${field}: cloud-config ${ea?.[field]}, ignition ${eb?.[field]}`);
      }
    }
  }
  return unexplained;
}

/**
 * The corpus has few users (its user examples have placeholder keys, which validation refuses):
 * one config of our own with every user field, owners by name and id, gzip, /etc/coreos, /etc/hosts,
 * unit kinds and a drop-in.
 */
const own = join(dir, 'users-and-owners.yaml');
writeFileSync(
  own,
  `#cloud-config
hostname: node-9
manage_etc_hosts: localhost
users:
  - name: alice
    gecos: Alice Example
    passwd: $6$rounds=4096$abcdefgh$Pq9vYz2yC7c4Y0bQmE8zQm5m0m2f3GkJ0bW8v1aQpZ0v6v8n2mJb7s0d8dQ2zVh8oJq5cVn4f1k9sR6p3t2u.
    homedir: /home/alice2
    shell: /bin/sh
    primary_group: docker
    groups: [sudo, docker]
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 alice@example.com
  - name: svc
    system: true
    no_create_home: true
    no_user_group: true
    shell: /sbin/nologin
  - name: bob
    no_log_init: true
    groups: [core]
write_files:
  - path: /etc/app/secret
    owner: alice:docker
    permissions: "0600"
    content: s
  - path: /opt/bin/tool
    owner: "1000:233"
    permissions: "0755"
    content: "#!/bin/sh\\n"
  - path: /etc/coreos/extra.conf
    content: x
  - path: /home/core/notes.gz.txt
    owner: core
    encoding: gzip+base64
    content: H4sIAAAAAAACA6vKLChITeECAKwAOscHAAAA
coreos:
  units:
    - name: daily.timer
      command: start
      content: "[Timer]\\nOnCalendar=daily\\n"
    - name: web.socket
      enable: true
      content: "[Socket]\\nListenStream=80\\n[Install]\\nWantedBy=sockets.target\\n"
    - name: masked.service
      mask: true
    - name: docker.service
      drop_ins:
        - name: 10-opts.conf
          content: "[Service]\\nEnvironment=DOCKER_OPTS=--debug\\n"
    - name: app.service
      enable: true
      content: "[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=default.target\\n"
`,
);

const samples = [
  own,
  ...readdirSync(corpusDir())
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(corpusDir(), f)),
  ...readdirSync(join(root, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(root, 'examples', f)),
];

(asRoot ? describe : describe.skip)('the round trip: cloud-config and its Ignition applied give the same machine', () => {
  const results = new Map<string, string[] | undefined>();

  test.each(samples.map((f) => [f === own ? 'users-and-owners.yaml (ours)' : f.slice(f.lastIndexOf('/', f.lastIndexOf('/') - 1) + 1), f]))('%s', (_name, file) => {
    const result = roundTrip(file);
    results.set(file, result);
    expect(result ?? []).toEqual([]);
  });

  test('the files that convert are most of the corpus; every allowance is needed by some file', () => {
    expect(results.get(own)).toBeDefined();
    const converted = [...results.values()].filter((r) => r !== undefined);
    expect(converted.length).toBeGreaterThanOrEqual(20);
    expect(allowances.filter((a) => !used.has(a)).map((a) => `${a.code}: ${a.why}`)).toEqual([]);
  });
});
