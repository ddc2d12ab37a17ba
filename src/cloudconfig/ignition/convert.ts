/**
 * Converts validated cloud-config to what Ignition makes of a Flatcar machine (spec 3.3.0, which
 * Butane's flatcar 1.0.0 variant produces), mapped as the Container Linux Config Transpiler and
 * Flatcar's migration guide do: users and SSH keys, files, units, etcd2 and flannel as drop-ins
 * for their wrappers, update and locksmith settings as /etc/flatcar/update.conf lines, and the
 * metadata variables through Flatcar's metadata agent. What has no equivalent is a warning at its
 * place in the user data that says what to do instead. Pure: render.ts writes the result out as
 * Ignition JSON or Butane YAML.
 */
import { posix } from 'node:path';
import type { Finding, PathSegment } from '../../report/diagnostic';
import { toCloudConfig } from '../config';
import type { CloudConfig, Environment, Unit } from '../config';
import { finding } from '../rules/common';
import { splitVariables, usedVariables } from '../substitute';
import type { MetadataVariable } from '../substitute';
import { getPair, scalarText } from '../tree';
import type { Range, YNode } from '../tree';
import type { UserDataKind } from '../userdata';
import { zlib } from '../userdata';

/**
 * The platforms whose metadata agent (coreos-metadata.service, Afterburn) writes the machine's
 * addresses to /run/metadata/flatcar, and the variable each metadata variable becomes there (the
 * Config Transpiler's table; Flatcar keeps the COREOS_ prefix). `custom` is for a fetcher of your
 * own that writes COREOS_CUSTOM_* variables.
 */
export const platformVariables: Record<string, Partial<Record<MetadataVariable, string>>> = {
  ec2: { private_ipv4: 'COREOS_EC2_IPV4_LOCAL', public_ipv4: 'COREOS_EC2_IPV4_PUBLIC' },
  openstack: { private_ipv4: 'COREOS_OPENSTACK_IPV4_LOCAL', public_ipv4: 'COREOS_OPENSTACK_IPV4_PUBLIC' },
  azure: { private_ipv4: 'COREOS_AZURE_IPV4_DYNAMIC', public_ipv4: 'COREOS_AZURE_IPV4_VIRTUAL' },
  gce: { private_ipv4: 'COREOS_GCE_IP_LOCAL_0', public_ipv4: 'COREOS_GCE_IP_EXTERNAL_0' },
  digitalocean: {
    private_ipv4: 'COREOS_DIGITALOCEAN_IPV4_PRIVATE_0',
    public_ipv4: 'COREOS_DIGITALOCEAN_IPV4_PUBLIC_0',
    private_ipv6: 'COREOS_DIGITALOCEAN_IPV6_PRIVATE_0',
    public_ipv6: 'COREOS_DIGITALOCEAN_IPV6_PUBLIC_0',
  },
  packet: { private_ipv4: 'COREOS_PACKET_IPV4_PRIVATE_0', public_ipv4: 'COREOS_PACKET_IPV4_PUBLIC_0', public_ipv6: 'COREOS_PACKET_IPV6_PUBLIC_0' },
  custom: {
    private_ipv4: 'COREOS_CUSTOM_PRIVATE_IPV4',
    public_ipv4: 'COREOS_CUSTOM_PUBLIC_IPV4',
    private_ipv6: 'COREOS_CUSTOM_PRIVATE_IPV6',
    public_ipv6: 'COREOS_CUSTOM_PUBLIC_IPV6',
  },
};

export const platforms = Object.keys(platformVariables);

/** Where Flatcar's metadata agent writes the variables, and the unit that does it. */
const metadataFile = '/run/metadata/flatcar';
const metadataUnit = 'coreos-metadata.service';
/** The drop-in that makes a unit wait for the metadata agent and read its variables (the wrappers' drop-ins begin so too). */
export const metadataDropIn = '20-coreos-metadata.conf';
const metadataDependency = `[Unit]\nRequires=${metadataUnit}\nAfter=${metadataUnit}\n\n[Service]\nEnvironmentFile=${metadataFile}\n`;

/** Flatcar's update settings (/etc/coreos is a link to /etc/flatcar there). */
export const updateConf = '/etc/flatcar/update.conf';

/** A user or group of a file: a numeric id or a name. */
export type Owner = { id: number } | { name: string };

export interface MachineFile {
  /** Absolute and clean. */
  path: string;
  /** Permission bits, 0 to 0777. */
  mode: number;
  user: Owner | undefined;
  group: Owner | undefined;
  content: Buffer;
  /** Whether the file is written gzip-compressed (`compression: gzip`), as it was in the user data. */
  gzip: boolean;
}

export interface MachineDropIn {
  name: string;
  contents: string;
}

export interface MachineUnit {
  name: string;
  enabled: boolean;
  mask: boolean;
  /** Unit text; undefined leaves the unit the image has. */
  contents: string | undefined;
  dropins: MachineDropIn[];
}

/** A user as Ignition's passwd.users entry has it: these fields, in this order, are what render.ts writes (unset ones left out). */
export interface MachineUser {
  name: string;
  passwordHash: string | undefined;
  sshAuthorizedKeys: string[];
  gecos: string | undefined;
  homeDir: string | undefined;
  noCreateHome: boolean;
  primaryGroup: string | undefined;
  groups: string[];
  noUserGroup: boolean;
  system: boolean;
  noLogInit: boolean;
  shell: string | undefined;
}

/** The machine a conversion describes, and what could not be carried over. */
export interface Conversion {
  users: MachineUser[];
  files: MachineFile[];
  units: MachineUnit[];
  /** Warnings (something left out) and infos (converted, but differently), placed in the user data. */
  findings: Finding[];
}

/** The validated user data a conversion takes (a ValidationReport without errors). */
export interface ConvertInput {
  kind: UserDataKind | undefined;
  text: string;
  root: YNode | undefined;
}

export interface ConvertOptions {
  /** The platform (a key of platformVariables) whose metadata variables `$private_ipv4` and friends become. */
  platform?: string;
}

/**
 * Converts validated user data (no error findings: the caller checks) to the machine Ignition
 * would make. A script or empty user data gives an empty machine; a script with a warning.
 */
export function convertUserData(input: ConvertInput, options: ConvertOptions = {}): Conversion {
  if (input.kind === 'script') {
    const first = input.text.indexOf('\n');
    return {
      users: [],
      files: [],
      units: [],
      findings: [
        finding(
          'warning',
          'unconverted-script',
          'a user-data script has no Ignition equivalent (Ignition runs no scripts): write it as a file with storage.files (mode 0755) and run it from a oneshot service',
          [],
          [0, first === -1 ? input.text.length : first],
        ),
      ],
    };
  }
  if (input.kind !== 'cloud-config' || input.root?.kind !== 'map') return { users: [], files: [], units: [], findings: [] };
  return new Converter(input.text, input.root, options.platform).convert(toCloudConfig(input.root));
}

/**
 * Validation's findings that a conversion answers itself, left out of its report: the deprecation
 * of coreos.etcd2, which is converted (to etcd-member.service); those of coreos.etcd, coreos.fleet
 * and SSH key imports, which have warnings of their own; and "enabled without an [Install]
 * section" where the conversion added one. Other deprecations (etcd2's ca_file, which etcd 3
 * dropped) stay.
 */
export function supersededByConversion(d: { code: string; path: PathSegment[] }, conversion: Conversion): boolean {
  if (d.code === 'enable-without-install') {
    const unit = d.path.slice(0, 3).join('.');
    return conversion.findings.some((f) => f.code === 'install-added' && f.path.slice(0, 3).join('.') === unit);
  }
  if (d.code !== 'deprecated-key') return false;
  const key = String(d.path[d.path.length - 1]).replace(/-/g, '_');
  return (d.path.length === 2 && d.path[0] === 'coreos' && ['etcd', 'etcd2', 'fleet'].includes(key)) || (d.path[0] === 'users' && key.startsWith('coreos_ssh_import'));
}

/** How one use of a metadata variable was converted: its `${NAME}`, or why it stays as written. */
type Outcome = { converted: string } | { code: string; why: string };

const networkTypes = ['network', 'netdev', 'link'];
const execLine = /^\s*Exec[A-Za-z]*\s*=/;
const serviceWrappers: Array<{ section: 'etcd2' | 'flannel'; unit: string; dropIn: string; prefix: string; exec: string }> = [
  { section: 'etcd2', unit: 'etcd-member.service', dropIn: '20-clct-etcd-member.conf', prefix: 'ETCD_', exec: '/usr/lib/flatcar/etcd-wrapper $ETCD_OPTS' },
  { section: 'flannel', unit: 'flanneld.service', dropIn: '20-clct-flannel.conf', prefix: 'FLANNELD_', exec: '/usr/lib/flatcar/flannel-wrapper $FLANNEL_OPTS' },
];

/** Where Ignition puts a user's SSH keys, and where coreos-cloudinit put them: both are merged into authorized_keys. */
function sshKeysFile(user: string): string {
  return `Ignition writes ${user}'s SSH keys to ~/.ssh/authorized_keys.d/ignition (coreos-cloudinit wrote authorized_keys.d/coreos-cloudinit); both end up in authorized_keys`;
}

class Converter {
  private readonly findings: Finding[] = [];
  private readonly users = new Map<string, MachineUser>();
  private readonly files = new Map<string, MachineFile>();
  private readonly units = new Map<string, MachineUnit>();
  /** Every use of a metadata variable in the text, in order. */
  private readonly variables: Array<{ name: MetadataVariable; index: number; length: number }>;
  /** The `$` offsets of the uses dealt with (converted, or warned about where they are). */
  private readonly handled = new Set<number>();
  private readonly names: Partial<Record<MetadataVariable, string>> | undefined;
  /** Each user's keys, and each unit's drop-ins by name: looked up, never searched for. */
  private readonly keys = new Map<MachineUser, Set<string>>();
  private readonly dropInIndex = new Map<MachineUnit, Map<string, number>>();

  constructor(
    text: string,
    private readonly root: YNode,
    private readonly platform: string | undefined,
  ) {
    this.variables = usedVariables(text);
    this.names = platform === undefined ? undefined : platformVariables[platform];
  }

  convert(config: CloudConfig): Conversion {
    // In coreos-cloudinit's order, so that where two write the same file the later one wins here too.
    if (config.hostname) this.addFile('/etc/hostname', Buffer.from(`${config.hostname}\n`));
    this.convertUsers(config);
    this.convertFiles(config);
    if (config.oem.length > 0) {
      // As coreos-cloudinit writes it (Go's %q for the quoted fields); any other value that is more than a word is quoted too, so it stays on its line.
      const quoted = new Set(['NAME', 'HOME_URL', 'BUG_REPORT_URL']);
      this.addFile('/etc/oem-release', Buffer.from(config.oem.map(([k, v]) => `${k}=${quoted.has(k) || /[^\w.+-]/.test(v) ? JSON.stringify(v) : v}\n`).join('')));
    }
    this.convertUpdate(config);
    this.convertEtcHosts(config);
    this.leaveOut('etcd', 'unconverted-etcd', 'coreos.etcd (etcd 0.4) is not converted: Flatcar has no etcd 0.4; move the settings to coreos.etcd2, which becomes etcd-member.service');
    this.leaveOut('fleet', 'unconverted-fleet', 'coreos.fleet is not converted: Flatcar does not ship fleet; run the workloads as systemd units (coreos.units) or on a scheduler such as Kubernetes');
    for (const wrapper of serviceWrappers) this.convertWrapper(wrapper, config[wrapper.section]);
    for (const unit of config.units) this.convertUnit(unit);
    this.warnVariablesLeft();
    // A unit entry that changes nothing (one only restarted, say) is left out.
    const units = [...this.units.values()].filter((u) => u.enabled || u.mask || u.contents !== undefined || u.dropins.length > 0);
    // A unit written over a file of write_files wins, as when applying (units come after files); Ignition refuses both.
    for (const u of units) {
      if (u.contents !== undefined || u.mask) this.files.delete(`/etc/systemd/system/${u.name}`);
      for (const d of u.dropins) this.files.delete(`/etc/systemd/system/${u.name}.d/${d.name}`);
    }
    return { users: [...this.users.values()], files: [...this.files.values()], units, findings: this.findings };
  }

  // ---- users

  private convertUsers(config: CloudConfig): void {
    for (const u of config.users) {
      const i = indexOf(u.origin);
      const first = !this.users.has(u.name);
      const user = this.user(u.name);
      // A later entry for the same user only adds its keys (validation warns: only the first creates it).
      if (first) {
        Object.assign(user, {
          passwordHash: u.passwd,
          gecos: u.gecos,
          homeDir: u.homedir,
          noCreateHome: u.noCreateHome,
          primaryGroup: u.primaryGroup,
          groups: u.groups,
          noUserGroup: u.noUserGroup,
          system: u.system,
          noLogInit: u.noLogInit,
          shell: u.shell,
        });
      }
      this.addKeys(user, u.sshAuthorizedKeys);
      if (u.sshAuthorizedKeys.length > 0) this.infoAtKey('ssh-keys-file', sshKeysFile(u.name), ['users', i, 'ssh_authorized_keys']);
      for (const key of ['coreos_ssh_import_github', 'coreos_ssh_import_github_users', 'coreos_ssh_import_url']) {
        const pair = getPair(this.node(['users', i]), key);
        if (!pair) continue;
        this.warn('unconverted-ssh-import', `${pair.rawKey} is not converted: Ignition fetches no SSH keys; list the keys in ssh_authorized_keys`, ['users', i, key], pair.keyRange);
      }
    }
    if (config.sshAuthorizedKeys.length > 0) {
      this.addKeys(this.user('core'), config.sshAuthorizedKeys);
      this.infoAtKey('ssh-keys-file', sshKeysFile('core'), ['ssh_authorized_keys']);
    }
  }

  private user(name: string): MachineUser {
    let user = this.users.get(name);
    if (!user) {
      user = {
        name,
        passwordHash: undefined,
        sshAuthorizedKeys: [],
        gecos: undefined,
        homeDir: undefined,
        noCreateHome: false,
        primaryGroup: undefined,
        groups: [],
        noUserGroup: false,
        system: false,
        noLogInit: false,
        shell: undefined,
      };
      this.users.set(name, user);
    }
    return user;
  }

  // ---- files

  private convertFiles(config: CloudConfig): void {
    for (const f of config.writeFiles) {
      const at = ['write_files', indexOf(f.origin)];
      let path = cleanPath(f.path);
      if (path === '/tmp' || path.startsWith('/tmp/')) {
        this.warn(
          'unconverted-tmp-file',
          `${path} is not converted: Flatcar mounts a tmpfs on /tmp after Ignition runs, which hides the file; write it elsewhere, or have systemd-tmpfiles create it (a file under /etc/tmpfiles.d)`,
          [...at, 'path'],
          this.range([...at, 'path']),
        );
        continue;
      }
      if (path.startsWith('/etc/coreos/')) {
        const moved = `/etc/flatcar/${path.slice('/etc/coreos/'.length)}`;
        this.info('flatcar-path', `${path} is written as ${moved}: /etc/coreos is a link to /etc/flatcar on Flatcar, and Ignition writes no path through a link`, [...at, 'path'], this.range([...at, 'path']));
        path = moved;
      }
      let mode = f.mode;
      if (mode & 0o7000) {
        const octal = `0${(mode & 0o7777).toString(8)}`;
        mode &= 0o777;
        this.warn(
          'unconverted-mode',
          `mode ${octal} has setuid, setgid or sticky bits, which Ignition spec 3.3.0 cannot set: the file is written with 0${mode.toString(8).padStart(3, '0')}; set them from a unit (chmod), or use spec 3.4.0 (Butane flatcar 1.1.0)`,
          [...at, 'permissions'],
          this.range([...at, 'permissions']),
        );
      }
      const [user, group] = parseOwner(f.owner);
      const encoding = scalarText(getPair(this.node(at), 'encoding')?.value) ?? '';
      const gzip = /(^|\+)gz(ip)?($|\+)/.test(encoding);
      this.files.set(path, { path, mode, user, group, content: gzip ? zlib().gzipSync(f.content) : f.content, gzip });
    }
  }

  private addFile(path: string, content: Buffer): void {
    this.files.set(path, { path, mode: 0o644, user: undefined, group: undefined, content, gzip: false });
  }

  /** coreos.update and coreos.locksmith: lines of update.conf, merged into one that write_files gives. */
  private convertUpdate(config: CloudConfig): void {
    // Each value is one line: validation refuses a line break in one (setting-value).
    const settings: Environment = [
      ...config.update,
      // locksmithd reads its settings from update.conf (systemd's EnvironmentFile=); the reboot window with its LOCKSMITHD_ prefix.
      ...config.locksmith.map(([k, v]): [string, string] => [k.startsWith('REBOOT_WINDOW_') ? `LOCKSMITHD_${k}` : k, v]),
    ];
    if (settings.length === 0) return;
    if (config.update.length > 0) {
      this.infoAtKey('update-conf', `coreos.update is written to ${updateConf}: /etc/coreos (where coreos-cloudinit wrote update.conf) is a link to /etc/flatcar on Flatcar`, ['coreos', 'update']);
    }
    if (config.locksmith.length > 0) {
      this.infoAtKey('update-conf', `coreos.locksmith is written to ${updateConf}, which locksmithd reads on Flatcar (coreos-cloudinit gave it to locksmithd.service as its environment in a drop-in)`, ['coreos', 'locksmith']);
    }
    const existing = this.files.get(updateConf);
    const current = existing && !existing.gzip ? existing.content.toString('utf8') : '';
    const lines = current === '' ? [] : current.replace(/\n$/, '').split('\n');
    const wanted = new Map(settings);
    const merged = lines.map((line) => {
      const key = line.split('=', 1)[0]!.trim();
      const value = wanted.get(key);
      if (value === undefined) return line;
      wanted.delete(key);
      return `${key}=${envValue(value)}`;
    });
    for (const [key, value] of wanted) merged.push(`${key}=${envValue(value)}`);
    const content = Buffer.from(`${merged.join('\n')}\n`);
    if (existing) Object.assign(existing, { content, gzip: false });
    else this.addFile(updateConf, content);
  }

  private convertEtcHosts(config: CloudConfig): void {
    if (config.manageEtcHosts !== 'localhost') return;
    if (config.hostname) {
      const h = config.hostname;
      this.addFile('/etc/hosts', Buffer.from(`127.0.0.1 ${h} localhost\n::1 ${h} localhost\n`));
      return;
    }
    this.warn(
      'unconverted-etc-hosts',
      'manage_etc_hosts is not converted: /etc/hosts is written from the host name, which this config does not set; add hostname:, or write /etc/hosts with write_files',
      ['manage_etc_hosts'],
      this.range(['manage_etc_hosts']),
    );
  }

  // ---- units

  /** etcd2 and flannel: their wrapper's unit, enabled, with the settings as its flags in a drop-in (as the Config Transpiler does). */
  private convertWrapper(wrapper: (typeof serviceWrappers)[number], env: Environment): void {
    if (env.length === 0) return;
    const section = this.node(['coreos', wrapper.section]);
    let usesMetadata = false;
    // Value by value: a comment in the section may name a variable too.
    for (const pair of section?.kind === 'map' ? section.pairs : []) {
      for (const v of this.variablesIn(pair.value.range)) {
        const outcome = this.outcome(v.name);
        if ('converted' in outcome) {
          usesMetadata = true;
          this.handled.add(v.index);
        } else this.warnVariable(v, outcome, ['coreos', wrapper.section, pair.key]);
      }
    }
    const args = env.map(([k, v]) => `  --${k.slice(wrapper.prefix.length).toLowerCase().replace(/_/g, '-')}=${this.execQuote(v)}`);
    const head = usesMetadata ? metadataDependency : '[Service]\n';
    const unit = this.unit(wrapper.unit);
    this.infoAtKey(
      'wrapper-drop-in',
      `coreos.${wrapper.section} becomes the flags of ${wrapper.unit} in the drop-in ${wrapper.dropIn}, enabled, as the Config Transpiler writes it (coreos-cloudinit gave the settings to ${wrapper.section === 'etcd2' ? 'etcd2.service as its environment' : 'flanneld in /run/flannel/options.env'})`,
      ['coreos', wrapper.section],
    );
    unit.enabled = true;
    this.setDropIn(unit, { name: wrapper.dropIn, contents: `${head}ExecStart=\nExecStart=${[wrapper.exec, ...args].join(' \\\n')}\n` });
  }

  private convertUnit(unit: Unit): void {
    const at: PathSegment[] = ['coreos', 'units', indexOf(unit.origin)];
    const type = /\.([^.]+)$/.exec(unit.name)?.[1] ?? '';
    if (networkTypes.includes(type)) return this.convertNetworkUnit(unit, at);
    if (unit.runtime) {
      this.info('runtime-unit', `runtime: Ignition runs once, at first boot, so ${unit.name} is written under /etc/systemd/system to last`, [...at, 'runtime'], this.range([...at, 'runtime']));
    }
    if (['etcd.service', 'etcd2.service', 'fleet.service'].includes(unit.name) && unit.content === undefined) {
      const instead = unit.name === 'fleet.service' ? 'Flatcar does not ship fleet' : 'Flatcar\'s etcd is etcd-member.service: give the drop-ins to it';
      this.warn('missing-unit', `${unit.name} is not on Flatcar, so this changes nothing there: ${instead}`, [...at, 'name'], this.range([...at, 'name']));
    }
    const out = this.unit(unit.name);
    let usesMetadata = false;
    if (unit.mask) out.mask = true;
    else {
      if (unit.content !== undefined) {
        const converted = this.unitText(unit.content, type, [...at, 'content']);
        usesMetadata ||= converted.usesMetadata;
        out.contents = converted.text;
      }
      for (const { dropIn, path } of this.dropIns(unit, at)) {
        const converted = this.unitText(dropIn.content, type, [...path, 'content']);
        usesMetadata ||= converted.usesMetadata;
        this.setDropIn(out, { name: dropIn.name, contents: converted.text });
      }
    }
    if (usesMetadata) this.setDropIn(out, { name: metadataDropIn, contents: metadataDependency });
    if (unit.enable && !unit.mask) out.enabled = true;
    if (unit.command === 'start' && !unit.mask) {
      out.enabled = true;
      if (out.contents !== undefined && !/^\s*\[Install\]\s*$/m.test(out.contents)) {
        const target = type === 'timer' ? 'timers.target' : type === 'socket' ? 'sockets.target' : type === 'path' ? 'paths.target' : 'multi-user.target';
        out.contents = `${out.contents.replace(/\n*$/, '\n')}\n[Install]\nWantedBy=${target}\n`;
        this.info('install-added', `command: start becomes enabled, which needs an [Install] section: WantedBy=${target} is added to ${unit.name}`, [...at, 'command'], this.range([...at, 'command']));
      }
    } else if (unit.command !== undefined && unit.command !== 'start') {
      const why =
        unit.command === 'stop'
          ? 'Ignition starts and stops nothing; to keep the unit from running, mask it (mask: true)'
          : 'Ignition writes the configuration before any unit starts, so the units start with it; for a command on every boot, write a oneshot service';
      this.warn('unconverted-command', `command: ${unit.command} has no Ignition equivalent: ${why}`, [...at, 'command'], this.range([...at, 'command']));
    }
  }

  /** systemd-networkd units are files under /etc/systemd/network (Ignition 3 has no networkd section). */
  private convertNetworkUnit(unit: Unit, at: PathSegment[]): void {
    if (unit.mask) {
      this.warn('unconverted-mask', `mask is not converted for ${unit.name}: link /etc/systemd/network/${unit.name} to /dev/null with storage.links`, [...at, 'mask'], this.range([...at, 'mask']));
      return;
    }
    if (unit.runtime) {
      this.info('runtime-unit', `runtime: Ignition runs once, at first boot, so ${unit.name} is written under /etc/systemd/network to last`, [...at, 'runtime'], this.range([...at, 'runtime']));
    }
    const file = `/etc/systemd/network/${unit.name}`;
    if (unit.content !== undefined) this.addFile(file, Buffer.from(this.unitText(unit.content, 'network', [...at, 'content']).text));
    for (const { dropIn, path } of this.dropIns(unit, at)) {
      this.addFile(`${file}.d/${dropIn.name}`, Buffer.from(this.unitText(dropIn.content, 'network', [...path, 'content']).text));
    }
  }

  /** The drop-ins of a unit that systemd reads (named *.conf: validation warns about others), with their paths in the user data. */
  private dropIns(unit: Unit, at: PathSegment[]): Array<{ dropIn: Unit['dropIns'][number]; path: PathSegment[] }> {
    // The settings keep the drop-ins that have a name and content, in order: pair them with the entries in the tree.
    const list = getPair(this.node(at), 'drop_ins')?.value;
    const paths: PathSegment[][] = [];
    if (list?.kind === 'seq') {
      list.items.forEach((item, j) => {
        if (scalarText(getPair(item, 'name')?.value) && scalarText(getPair(item, 'content')?.value)) paths.push([...at, 'drop_ins', j]);
      });
    }
    return unit.dropIns.map((dropIn, j) => ({ dropIn, path: paths[j] ?? at })).filter(({ dropIn }) => dropIn.name.endsWith('.conf'));
  }

  /**
   * Unit text with its metadata variables converted where systemd expands them: in the Exec lines
   * of a service, given a platform. Each other use stays as written, with a warning.
   */
  private unitText(text: string, type: string, at: PathSegment[]): { text: string; usesMetadata: boolean } {
    if (!text.includes('$')) return { text, usesMetadata: false };
    const exec = execLines(text);
    const inText = this.variablesIn(this.node(at)?.range);
    let usesMetadata = false;
    let k = 0;
    const out = splitVariables(text)
      .map((piece) => {
        if (typeof piece === 'string') return piece;
        const source = inText[k++];
        const outcome: Outcome =
          type === 'service' && exec(piece.index)
            ? this.outcome(piece.variable)
            : { code: 'unconverted-variable', why: 'systemd expands variables only in the Exec lines of a service; use it in ExecStart= (with EnvironmentFile=/run/metadata/flatcar)' };
        if ('converted' in outcome) {
          usesMetadata = true;
          if (source) this.handled.add(source.index);
          return outcome.converted;
        }
        if (source) this.warnVariable(source, outcome, at);
        return `$${piece.variable}`;
      })
      .join('');
    // Uses not matched one to one (an escape the YAML itself undid) are warned about where the content is.
    for (const v of inText) if (!this.handled.has(v.index)) this.warnVariable(v, { code: 'unconverted-variable', why: 'it could not be matched to the unit text' }, at);
    return { text: out, usesMetadata };
  }

  /** Keys added to a user, each once (Ignition refuses a key given twice). */
  private addKeys(user: MachineUser, keys: string[]): void {
    let seen = this.keys.get(user);
    if (!seen) this.keys.set(user, (seen = new Set(user.sshAuthorizedKeys)));
    for (const key of keys) {
      if (seen.has(key)) continue;
      seen.add(key);
      user.sshAuthorizedKeys.push(key);
    }
  }

  /** Adds a drop-in, or replaces the one of that name. */
  private setDropIn(unit: MachineUnit, dropIn: MachineDropIn): void {
    let index = this.dropInIndex.get(unit);
    if (!index) this.dropInIndex.set(unit, (index = new Map()));
    const i = index.get(dropIn.name);
    if (i === undefined) index.set(dropIn.name, unit.dropins.push(dropIn) - 1);
    else unit.dropins[i] = dropIn;
  }

  private unit(name: string): MachineUnit {
    let unit = this.units.get(name);
    if (!unit) {
      unit = { name, enabled: false, mask: false, contents: undefined, dropins: [] };
      this.units.set(name, unit);
    }
    return unit;
  }

  // ---- metadata variables

  /** What a use of `name` becomes where systemd expands it. */
  private outcome(name: MetadataVariable): Outcome {
    if (this.names === undefined) {
      return { code: 'needs-platform', why: `give --platform (${platforms.join(', ')}) to take it from the metadata agent` };
    }
    const variable = this.names[name];
    if (variable === undefined) {
      const has = Object.values(this.names).join(', ');
      return { code: 'unconverted-variable', why: `the ${this.platform} metadata agent has no such address (it sets ${has})` };
    }
    return { converted: `\${${variable}}` };
  }

  private warnVariable(v: { name: MetadataVariable; index: number; length: number }, outcome: Extract<Outcome, { code: string }>, at: PathSegment[]): void {
    this.handled.add(v.index);
    this.warn(outcome.code, `$${v.name} stays as written: ${outcome.why}`, at, [v.index, v.index + v.length]);
  }

  /** The uses of variables within `range`, marking none (a binary search: the uses are in text order). */
  private variablesIn(range: Range | undefined): Array<{ name: MetadataVariable; index: number; length: number }> {
    if (!range || this.variables.length === 0) return [];
    let lo = 0;
    let hi = this.variables.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.variables[mid]!.index < range[0]) lo = mid + 1;
      else hi = mid;
    }
    const out = [];
    for (let i = lo; i < this.variables.length && this.variables[i]!.index < range[1]; i++) out.push(this.variables[i]!);
    return out;
  }

  /** A section with no equivalent: one warning at its key; the variables in it go with it. */
  private leaveOut(section: 'etcd' | 'fleet', code: string, message: string): void {
    const coreos = this.node(['coreos']);
    const pair = getPair(coreos, section);
    if (!pair || pair.value.kind !== 'map' || pair.value.pairs.length === 0) return;
    this.warn(code, message, ['coreos', section], pair.keyRange);
    for (const v of this.variablesIn(pair.value.range)) this.handled.add(v.index);
  }

  /** Uses of variables in values that no conversion took: in file contents, update settings, anywhere. Comments hold none. */
  private warnVariablesLeft(): void {
    const left = this.variables.filter((v) => !this.handled.has(v.index));
    if (left.length === 0) return;
    const scalars = scalarsOf(this.root);
    for (const v of left) {
      const path = scalarAt(scalars, v.index);
      if (!path) continue;
      const why =
        path[0] === 'write_files'
          ? `Ignition writes file contents as given; write the file from a oneshot service with EnvironmentFile=${metadataFile} instead`
          : 'Ignition substitutes no variables here; set the value from a service with EnvironmentFile=/run/metadata/flatcar instead';
      this.warnVariable(v, { code: 'unconverted-variable', why }, path);
    }
  }

  /** A value quoted for an Exec line (systemd's rules: C escapes, `$$` and `%%`), its metadata variables converted. */
  private execQuote(value: string): string {
    const escape = (s: string) =>
      s.replace(/[\\"$%\n\t\r]/g, (c) => ({ '\\': '\\\\', '"': '\\"', $: '$$', '%': '%%', '\n': '\\n', '\t': '\\t', '\r': '\\r' })[c]!);
    const body = splitVariables(value)
      .map((piece) => {
        if (typeof piece === 'string') return escape(piece);
        const outcome = this.outcome(piece.variable);
        return 'converted' in outcome ? outcome.converted : escape(`$${piece.variable}`);
      })
      .join('');
    return `"${body}"`;
  }

  // ---- findings and places

  private warn(code: string, message: string, path: PathSegment[], range: Range): void {
    this.findings.push(finding('warning', code, message, path, range));
  }

  private info(code: string, message: string, path: PathSegment[], range: Range): void {
    this.findings.push(finding('info', code, message, path, range));
  }

  /** An info at the key that ends a path (a section or a list of the user data). */
  private infoAtKey(code: string, message: string, path: PathSegment[]): void {
    const pair = getPair(this.node(path.slice(0, -1)), String(path[path.length - 1]));
    if (pair) this.info(code, message, path, pair.keyRange);
  }

  /** The node at a path of keys and indexes. */
  private node(path: PathSegment[]): YNode | undefined {
    let node: YNode | undefined = this.root;
    for (const seg of path) {
      if (typeof seg === 'number') node = node?.kind === 'seq' ? node.items[seg] : undefined;
      else node = getPair(node, seg)?.value;
    }
    return node;
  }

  /** Where the value at `path` is (the parent's when it is missing). */
  private range(path: PathSegment[]): Range {
    for (let n = path.length; n >= 0; n--) {
      const node = this.node(path.slice(0, n));
      if (node) return node.range;
    }
    return [0, 0];
  }
}

/** The index in an origin such as `write_files[3]`: where the entry is in the user data. */
function indexOf(origin: string): number {
  return Number(/\[(\d+)\]$/.exec(origin)![1]);
}


/** An absolute, clean path (write_files takes relative ones as from /). */
function cleanPath(path: string): string {
  const clean = posix.normalize(path.startsWith('/') ? path : `/${path}`);
  return clean.length > 1 ? clean.replace(/\/+$/, '') : clean;
}

/** `user`, `user:group` or numeric ids, as Ignition's user and group; undefined for root, which Ignition takes when none is given. */
function parseOwner(owner: string | undefined): [Owner | undefined, Owner | undefined] {
  if (!owner) return [undefined, undefined];
  const [user, group] = owner.split(':', 2);
  const one = (s: string | undefined): Owner | undefined => (!s || s === 'root' || /^0+$/.test(s) ? undefined : /^\d+$/.test(s) ? { id: Number(s) } : { name: s });
  return [one(user), one(group)];
}

/** A value for update.conf (read as a systemd EnvironmentFile): quoted when it holds more than a word. */
function envValue(value: string): string {
  return /^[A-Za-z0-9_.,:/@+=-]*$/.test(value) ? value : `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A test of offsets in unit text: is it on an Exec line (or one of its continuation lines)? */
function execLines(text: string): (offset: number) => boolean {
  const starts: number[] = [];
  const exec: boolean[] = [];
  let continued = false;
  let start = 0;
  for (const line of text.split('\n')) {
    const isExec: boolean = continued || execLine.test(line);
    starts.push(start);
    exec.push(isExec);
    continued = isExec && line.endsWith('\\');
    start += line.length + 1;
  }
  return (offset) => {
    // The last line that starts at or before the offset.
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return exec[lo - 1] ?? false;
  };
}

/** Every scalar value of the tree with its path, in text order (keys are not values). */
function scalarsOf(root: YNode): Array<{ range: Range; path: PathSegment[] }> {
  const out: Array<{ range: Range; path: PathSegment[] }> = [];
  const walk = (node: YNode, path: PathSegment[]) => {
    if (node.kind === 'scalar') out.push({ range: node.range, path });
    else if (node.kind === 'seq') node.items.forEach((item, i) => walk(item, [...path, i]));
    else for (const pair of node.pairs) walk(pair.value, [...path, pair.key]);
  };
  walk(root, []);
  return out.sort((a, b) => a.range[0] - b.range[0]);
}

/** The path of the scalar that holds `offset` (a binary search), or undefined: a comment, a key. */
function scalarAt(scalars: Array<{ range: Range; path: PathSegment[] }>, offset: number): PathSegment[] | undefined {
  let lo = 0;
  let hi = scalars.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (scalars[mid]!.range[0] <= offset) lo = mid + 1;
    else hi = mid;
  }
  const found = scalars[lo - 1];
  return found && offset < found.range[1] ? found.path : undefined;
}
