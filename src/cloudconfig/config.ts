/**
 * The validated settings: a cloud-config tree (already validated, without errors) turned into
 * typed values with their defaults, content decoded. Only these reach the apply engine.
 */
import { getPair, scalarText } from './tree';
import type { MapNode, YNode } from './tree';
import { definition, typesOf } from './schema';
import { decodeContent } from './encoding';
import { mapEntries } from './rules/common';

export interface WriteFile {
  /** Where in the user data, for messages: `write_files[3]`. */
  origin: string;
  path: string;
  content: Buffer;
  /** File mode. Default 0644. */
  mode: number;
  /** `user`, `user:group` or numeric ids, resolved in the target root; undefined: root. */
  owner: string | undefined;
}

export interface User {
  origin: string;
  name: string;
  /** The id of a new user (Ignition's uid); undefined lets useradd pick one. cloud-config has none. */
  uid?: number;
  passwd: string | undefined;
  gecos: string | undefined;
  homedir: string | undefined;
  noCreateHome: boolean;
  primaryGroup: string | undefined;
  groups: string[];
  noUserGroup: boolean;
  system: boolean;
  noLogInit: boolean;
  shell: string | undefined;
  sshAuthorizedKeys: string[];
}

export interface DropIn {
  name: string;
  content: string;
}

export type UnitCommand = 'start' | 'stop' | 'restart' | 'reload' | 'try-restart' | 'reload-or-restart' | 'reload-or-try-restart';

export interface Unit {
  origin: string;
  name: string;
  /** Unit text; undefined leaves an existing unit file alone. */
  content: string | undefined;
  /** Under /run instead of /etc. Default false. */
  runtime: boolean;
  enable: boolean;
  mask: boolean;
  command: UnitCommand | undefined;
  dropIns: DropIn[];
}

/** A service section as environment settings, in the reference's field order, zero values left out. */
export type Environment = Array<[name: string, value: string]>;

export interface CloudConfig {
  hostname: string | undefined;
  manageEtcHosts: string | undefined;
  /** Keys for user core. */
  sshAuthorizedKeys: string[];
  users: User[];
  writeFiles: WriteFile[];
  units: Unit[];
  etcd: Environment;
  etcd2: Environment;
  fleet: Environment;
  locksmith: Environment;
  flannel: Environment;
  /** REBOOT_STRATEGY, GROUP, SERVER for /etc/coreos/update.conf. */
  update: Environment;
  /** ID, VERSION_ID, NAME, HOME_URL, BUG_REPORT_URL; empty when no id is set. */
  oem: Environment;
}

function text(node: MapNode | undefined, key: string): string | undefined {
  const t = scalarText(getPair(node, key)?.value);
  return t === '' ? undefined : t;
}

function flag(node: MapNode | undefined, key: string): boolean {
  const v = getPair(node, key)?.value;
  return v?.kind === 'scalar' && v.value === true;
}

function strings(node: YNode | undefined): string[] {
  if (node?.kind !== 'seq') return [];
  return node.items.map((i) => scalarText(i)).filter((s): s is string => s !== undefined);
}

/** The mapping items of a list (others are the validator's business). */
function entries(node: YNode | undefined): MapNode[] {
  return mapEntries(node, []).map((e) => e.entry);
}

function asMap(node: YNode | undefined): MapNode | undefined {
  return node?.kind === 'map' ? node : undefined;
}

/**
 * A setting as the reference writes it in Environment= lines (Go's %v of the typed field):
 * string fields as written (`off` stays `off`), booleans and numbers formatted; undefined for
 * the zero values it leaves out (empty, false, 0).
 */
function goValue(node: YNode | undefined, isString: boolean): string | undefined {
  if (node?.kind !== 'scalar' || node.value === null) return undefined;
  if (isString) {
    const t = scalarText(node);
    return t === '' ? undefined : t;
  }
  if (node.value === false || node.value === 0) return undefined;
  return String(node.value);
}

/** A service section's settings as (variable, value) pairs, in schema order. */
function environment(section: MapNode | undefined, name: string): Environment {
  if (!section) return [];
  const schema = definition(name);
  const out: Environment = [];
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (!prop.env) continue;
    const value = goValue(getPair(section, key)?.value, typesOf(prop).includes('string'));
    if (value !== undefined) out.push([prop.env, value]);
  }
  return out;
}

/** A write_files entry's content, decoded (the validator has checked that it decodes). */
function fileContent(entry: MapNode): Buffer {
  const node = getPair(entry, 'content')?.value;
  if (node?.kind !== 'scalar' || node.value === null) return Buffer.alloc(0);
  const raw = node.value instanceof Uint8Array ? Buffer.from(node.value) : Buffer.from(node.source, 'utf8');
  const decoded = decodeContent(raw, text(entry, 'encoding'));
  if (typeof decoded === 'string') throw new Error(`content cannot be decoded: ${decoded}`);
  return decoded;
}

const oemFields: Array<[key: string, name: string]> = [
  ['id', 'ID'],
  ['version_id', 'VERSION_ID'],
  ['name', 'NAME'],
  ['home_url', 'HOME_URL'],
  ['bug_report_url', 'BUG_REPORT_URL'],
];

/** Typed settings from a validated cloud-config tree. */
export function toCloudConfig(root: YNode | undefined): CloudConfig {
  const top = asMap(root);
  const coreos = asMap(getPair(top, 'coreos')?.value);
  const section = (name: string) => asMap(getPair(coreos, name)?.value);
  const oem = section('oem');
  return {
    hostname: text(top, 'hostname'),
    manageEtcHosts: text(top, 'manage_etc_hosts'),
    sshAuthorizedKeys: strings(getPair(top, 'ssh_authorized_keys')?.value),
    users: entries(getPair(top, 'users')?.value).flatMap((u, i) => {
      const name = text(u, 'name');
      if (!name) return [];
      return [
        {
          origin: `users[${i}]`,
          name,
          passwd: text(u, 'passwd'),
          gecos: text(u, 'gecos'),
          homedir: text(u, 'homedir'),
          noCreateHome: flag(u, 'no_create_home'),
          primaryGroup: text(u, 'primary_group'),
          groups: strings(getPair(u, 'groups')?.value),
          noUserGroup: flag(u, 'no_user_group'),
          system: flag(u, 'system'),
          noLogInit: flag(u, 'no_log_init'),
          shell: text(u, 'shell'),
          sshAuthorizedKeys: strings(getPair(u, 'ssh_authorized_keys')?.value),
        },
      ];
    }),
    writeFiles: entries(getPair(top, 'write_files')?.value).flatMap((f, i) => {
      const path = text(f, 'path');
      if (!path) return [];
      const permissions = text(f, 'permissions');
      return [{ origin: `write_files[${i}]`, path, content: fileContent(f), mode: permissions ? parseInt(permissions, 8) : 0o644, owner: text(f, 'owner') }];
    }),
    units: entries(getPair(coreos, 'units')?.value).flatMap((u, i) => {
      const name = text(u, 'name');
      if (!name) return [];
      return [
        {
          origin: `coreos.units[${i}]`,
          name,
          content: text(u, 'content'),
          runtime: flag(u, 'runtime'),
          enable: flag(u, 'enable'),
          mask: flag(u, 'mask'),
          command: text(u, 'command') as UnitCommand | undefined,
          dropIns: entries(getPair(u, 'drop_ins')?.value).flatMap((d) => {
            const dropName = text(d, 'name');
            const content = text(d, 'content');
            return dropName && content ? [{ name: dropName, content }] : [];
          }),
        },
      ];
    }),
    etcd: environment(section('etcd'), 'etcd'),
    etcd2: environment(section('etcd2'), 'etcd2'),
    fleet: environment(section('fleet'), 'fleet'),
    locksmith: environment(section('locksmith'), 'locksmith'),
    flannel: environment(section('flannel'), 'flannel'),
    update: environment(section('update'), 'update'),
    oem: text(oem, 'id') ? oemFields.flatMap(([key, name]) => {
      const value = text(oem, key);
      return value ? [[name, value] as [string, string]] : [];
    }) : [],
  };
}
