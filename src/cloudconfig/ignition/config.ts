/**
 * The validated settings of an Ignition config: a tree that validated without errors (spec 3.0.0
 * to 3.5.0, or 2.0.0 to 2.3.0) turned into typed values with Ignition's defaults, both spec lines
 * into one model. Inline contents (data URLs) are decoded here; remote sources stay URLs for the
 * apply engine to fetch. What this model does not apply (disks, partitions, RAID, LUKS,
 * filesystems, merged configs, kernel arguments ...) is listed in `notApplied` with the reason.
 * Pure: no fs, no network.
 */
import type { User } from '../config';
import { getPair } from '../tree';
import type { MapNode, YNode } from '../tree';
import { entries, int, objectAt, str, stringItems } from './fields';
import type { Spec } from './fields';

/** A user or a group named by its id or by its name. */
export type AccountRef = { id: number } | { name: string };

/** Who owns a node: Ignition's `user` and `group`; a missing one is root (id 0), as Ignition has it. */
export interface NodeOwner {
  user: AccountRef | undefined;
  group: AccountRef | undefined;
}

/** Where contents come from: decoded inline data, or a URL to fetch. */
export type ContentSource = { kind: 'inline'; data: Buffer } | { kind: 'url'; url: string; scheme: string };

/** One resource of a file: its contents or a fragment appended to them. */
export interface Resource {
  /** Where in the config, for messages: `storage.files[2].contents`. */
  origin: string;
  source: ContentSource;
  /** `gzip`, or undefined for none. */
  compression: 'gzip' | undefined;
  /** `sha512-HEX` or `sha256-HEX`, of the contents after decompression. */
  hash: string | undefined;
  /** HTTP headers sent with an http or https fetch, in order. */
  headers: Array<[name: string, value: string]>;
}

export interface IgnitionFile {
  origin: string;
  path: string;
  /**
   * Whether what is at the path is replaced. Default false in 3.x (an existing file that differs
   * is an error), true in 2.x.
   */
  overwrite: boolean;
  /** The contents; undefined keeps an existing file's contents (an empty file is created when there is none). */
  contents: Resource | undefined;
  /** Fragments added after the contents (3.x `append`; 2.x `append: true` makes the contents one). */
  append: Resource[];
  /** Permission bits; undefined: 0644, or an existing file's mode when its contents are kept. */
  mode: number | undefined;
  owner: NodeOwner;
}

export interface IgnitionDirectory {
  origin: string;
  path: string;
  /** Whether something other than a directory at the path is replaced. Default false. */
  overwrite: boolean;
  /** Permission bits; undefined: 0755, or an existing directory's mode. */
  mode: number | undefined;
  owner: NodeOwner;
}

export interface IgnitionLink {
  origin: string;
  path: string;
  /** The link's target: a path, as written (a hard link's is in the root). */
  target: string;
  hard: boolean;
  /** Whether something other than this link at the path is replaced. Default false. */
  overwrite: boolean;
  /** The owner of a symbolic link (ignored for a hard link). */
  owner: NodeOwner;
}

export interface IgnitionDropIn {
  name: string;
  /** Undefined: nothing is written. */
  contents: string | undefined;
}

export interface IgnitionUnit {
  origin: string;
  name: string;
  /** Unit text; undefined leaves an existing unit file alone. */
  contents: string | undefined;
  /** true enables, false disables, undefined leaves as it is. */
  enabled: boolean | undefined;
  /** true masks, false unmasks, undefined leaves as it is. */
  mask: boolean | undefined;
  dropIns: IgnitionDropIn[];
  /** A systemd-networkd unit of spec 2.x's `networkd` section: a file under the network unit directory. */
  network: boolean;
}

export interface IgnitionUser extends User {
  /** False: the user should not exist (Ignition deletes it). Default true. */
  shouldExist: boolean;
}

export interface IgnitionGroup {
  origin: string;
  name: string;
  gid: number | undefined;
  passwordHash: string | undefined;
  system: boolean;
  /** False: the group should not exist. Default true. */
  shouldExist: boolean;
}

/** Something the config asks for that is not applied here, and why: a line of the apply report. */
export interface NotApplied {
  origin: string;
  /** One word: `disk`, `partition`, `raid`, `luks`, `filesystem`, `config`, ... */
  what: string;
  /** What it is about: a device, a path, a name. */
  target: string;
  why: string;
}

export interface IgnitionConfig {
  version: string;
  groups: IgnitionGroup[];
  users: IgnitionUser[];
  files: IgnitionFile[];
  directories: IgnitionDirectory[];
  links: IgnitionLink[];
  units: IgnitionUnit[];
  notApplied: NotApplied[];
}

const initramfs = 'not applied: storage devices are set up by Ignition in the initramfs, before the root is mounted';

/** A boolean field: its value, or undefined when it is missing or null. */
function bool(entry: YNode | undefined, key: string): boolean | undefined {
  const node = getPair(entry, key)?.value;
  return node?.kind === 'scalar' && typeof node.value === 'boolean' ? node.value : undefined;
}

/** A string field's text, undefined when missing, null or empty. */
function text(entry: YNode | undefined, key: string): string | undefined {
  const t = str(entry, key)?.text;
  return t === '' ? undefined : t;
}

/** An integer field's value, undefined when missing or null. */
function integer(entry: YNode | undefined, key: string): number | undefined {
  return int(entry, key)?.value;
}

function accountRef(node: MapNode | undefined): AccountRef | undefined {
  const id = integer(node, 'id');
  if (id !== undefined) return { id };
  const name = text(node, 'name');
  return name === undefined ? undefined : { name };
}

function ownerOf(entry: MapNode): NodeOwner {
  return { user: accountRef(objectAt(entry, ['user'])), group: accountRef(objectAt(entry, ['group'])) };
}

/**
 * The bytes of a `data:` URL (RFC 2397): percent-escapes undone byte by byte, then base64 decoded
 * when the URL says `;base64`. The validator has checked that it decodes; a string says why not.
 */
export function decodeDataUrl(url: string): Buffer | string {
  const comma = url.indexOf(',');
  if (!/^data:/i.test(url) || comma === -1) return 'not a data URL';
  const base64 = /;base64$/i.test(url.slice(5, comma));
  const raw = url.slice(comma + 1);
  // An escape is three characters for one byte, so the UTF-8 length of the text bounds the bytes.
  const out = Buffer.allocUnsafe(Buffer.byteLength(raw, 'utf8'));
  let size = 0;
  let run = 0;
  for (let i = raw.indexOf('%'); i !== -1; i = raw.indexOf('%', run)) {
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return 'a "%" that does not start a %XX escape';
    size += out.write(raw.slice(run, i), size, 'utf8');
    out[size++] = parseInt(hex, 16);
    run = i + 3;
  }
  size += out.write(raw.slice(run), size, 'utf8');
  const data = out.subarray(0, size);
  if (!base64) return data;
  const b64 = data.toString('latin1');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return 'the data is not valid base64';
  return Buffer.from(b64, 'base64');
}

/** A resource object (`contents`, an `append` entry), or undefined when it has no source. */
function resourceOf(node: MapNode | undefined, origin: string): Resource | undefined {
  const source = text(node, 'source');
  if (source === undefined) return undefined;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(source)?.[1]?.toLowerCase() ?? '';
  let content: ContentSource;
  if (scheme === 'data') {
    const data = decodeDataUrl(source);
    if (typeof data === 'string') throw new Error(`${origin}.source: ${data}`);
    content = { kind: 'inline', data };
  } else content = { kind: 'url', url: source, scheme };
  const headers: Array<[string, string]> = [];
  for (const { entry } of entries(node, 'httpHeaders', [])) {
    const name = text(entry, 'name');
    if (name !== undefined) headers.push([name, str(entry, 'value')?.text ?? '']);
  }
  return {
    origin,
    source: content,
    compression: text(node, 'compression') === 'gzip' ? 'gzip' : undefined,
    hash: text(objectAt(node, ['verification']), 'hash'),
    headers,
  };
}

/** Spec 2.x's files, directories and links name a filesystem: only "root" is the root applied here. */
function onRoot(entry: MapNode, spec: Spec, kind: string, path: string, origin: string, notApplied: NotApplied[]): boolean {
  if (spec.major !== 2) return true;
  const fs = text(entry, 'filesystem') ?? 'root';
  if (fs === 'root') return true;
  notApplied.push({ origin, what: kind, target: path, why: `not applied: it is on filesystem "${fs}", which Ignition mounts in the initramfs; only "root" is applied here` });
  return false;
}

function files(storage: MapNode | undefined, spec: Spec, notApplied: NotApplied[]): IgnitionFile[] {
  return entries(storage, 'files', ['storage']).flatMap(({ entry }, i) => {
    const origin = `storage.files[${i}]`;
    const path = text(entry, 'path');
    if (path === undefined || !onRoot(entry, spec, 'file', path, origin, notApplied)) return [];
    const contents = resourceOf(objectAt(entry, ['contents']), `${origin}.contents`);
    const append = entries(entry, 'append', []).flatMap((a) => resourceOf(a.entry, `${origin}.append[${a.path[1]}]`) ?? []);
    const base = { origin, path, mode: integer(entry, 'mode'), owner: ownerOf(entry) };
    if (spec.major === 2) {
      // 2.x: `append: true` adds the contents to what is there; otherwise the file is replaced
      // (overwrite defaults to true), an empty one when there is no source.
      if (bool(entry, 'append') === true) return [{ ...base, overwrite: false, contents: undefined, append: contents ? [contents] : [] }];
      const overwrite = bool(entry, 'overwrite') ?? true;
      const empty: Resource = { origin: `${origin}.contents`, source: { kind: 'inline', data: Buffer.alloc(0) }, compression: undefined, hash: undefined, headers: [] };
      return [{ ...base, overwrite, contents: contents ?? empty, append: [] }];
    }
    return [{ ...base, overwrite: bool(entry, 'overwrite') ?? false, contents, append }];
  });
}

function directories(storage: MapNode | undefined, spec: Spec, notApplied: NotApplied[]): IgnitionDirectory[] {
  return entries(storage, 'directories', ['storage']).flatMap(({ entry }, i) => {
    const origin = `storage.directories[${i}]`;
    const path = text(entry, 'path');
    if (path === undefined || !onRoot(entry, spec, 'directory', path, origin, notApplied)) return [];
    return [{ origin, path, overwrite: bool(entry, 'overwrite') ?? false, mode: integer(entry, 'mode'), owner: ownerOf(entry) }];
  });
}

function links(storage: MapNode | undefined, spec: Spec, notApplied: NotApplied[]): IgnitionLink[] {
  return entries(storage, 'links', ['storage']).flatMap(({ entry }, i) => {
    const origin = `storage.links[${i}]`;
    const path = text(entry, 'path');
    const target = text(entry, 'target');
    if (path === undefined || target === undefined || !onRoot(entry, spec, 'link', path, origin, notApplied)) return [];
    return [{ origin, path, target, hard: bool(entry, 'hard') ?? false, overwrite: bool(entry, 'overwrite') ?? false, owner: ownerOf(entry) }];
  });
}

/** The storage sections that belong to the initramfs: a line each (each partition too). */
function storageNotApplied(storage: MapNode | undefined, notApplied: NotApplied[]): void {
  for (const { entry, path } of entries(storage, 'disks', ['storage'])) {
    const device = text(entry, 'device') ?? '(no device)';
    notApplied.push({ origin: `storage.disks[${path[2]}]`, what: 'disk', target: device, why: initramfs });
    for (const part of entries(entry, 'partitions', [])) {
      const name = text(part.entry, 'label') ?? String(integer(part.entry, 'number') ?? '');
      notApplied.push({ origin: `storage.disks[${path[2]}].partitions[${part.path[1]}]`, what: 'partition', target: `${device} ${name}`.trimEnd(), why: initramfs });
    }
  }
  for (const { entry, path } of entries(storage, 'raid', ['storage'])) {
    notApplied.push({ origin: `storage.raid[${path[2]}]`, what: 'raid', target: text(entry, 'name') ?? '', why: initramfs });
  }
  for (const { entry, path } of entries(storage, 'luks', ['storage'])) {
    notApplied.push({ origin: `storage.luks[${path[2]}]`, what: 'luks', target: text(entry, 'name') ?? '', why: initramfs });
  }
  for (const { entry, path } of entries(storage, 'filesystems', ['storage'])) {
    // 2.x keeps the device under `mount`.
    const device = text(entry, 'device') ?? text(objectAt(entry, ['mount']), 'device') ?? text(entry, 'path') ?? text(entry, 'name') ?? '';
    notApplied.push({ origin: `storage.filesystems[${path[2]}]`, what: 'filesystem', target: device, why: initramfs });
  }
}

/** What the `ignition` section and kernelArguments ask that only Ignition itself does. */
function ignitionNotApplied(root: YNode, spec: Spec, notApplied: NotApplied[]): void {
  const config = objectAt(root, ['ignition', 'config']);
  for (const { entry, path } of entries(config, spec.major === 3 ? 'merge' : 'append', [])) {
    notApplied.push({ origin: `ignition.config.${path[0]}[${path[1]}]`, what: 'config', target: text(entry, 'source') ?? '', why: 'not applied: configs are merged by Ignition; merge them into this one' });
  }
  const replace = objectAt(config, ['replace']);
  if (text(replace, 'source') !== undefined) {
    notApplied.push({ origin: 'ignition.config.replace', what: 'config', target: text(replace, 'source')!, why: 'not applied: apply the replacing config itself' });
  }
  for (const { entry, path } of entries(objectAt(root, ['ignition', 'security', 'tls']), 'certificateAuthorities', [])) {
    notApplied.push({
      origin: `ignition.security.tls.certificateAuthorities[${path[1]}]`,
      what: 'certificate-authority',
      target: text(entry, 'source') ?? '',
      why: 'not applied: https sources are checked against the system\'s certificate authorities only',
    });
  }
  const timeouts = objectAt(root, ['ignition', 'timeouts']);
  if (integer(timeouts, 'httpResponseHeaders') !== undefined || integer(timeouts, 'httpTotal') !== undefined) {
    notApplied.push({ origin: 'ignition.timeouts', what: 'timeouts', target: '', why: 'not applied: fetches are bounded by the --http-* flags' });
  }
  const proxy = objectAt(root, ['ignition', 'proxy']);
  if (proxy && (text(proxy, 'httpProxy') ?? text(proxy, 'httpsProxy')) !== undefined) {
    notApplied.push({ origin: 'ignition.proxy', what: 'proxy', target: text(proxy, 'httpsProxy') ?? text(proxy, 'httpProxy')!, why: 'not applied: sources are fetched directly' });
  }
  const kargs = objectAt(root, ['kernelArguments']);
  for (const key of ['shouldExist', 'shouldNotExist']) {
    for (const arg of stringItems(kargs, key, [])) {
      notApplied.push({ origin: `kernelArguments.${key}[${arg.path[1]}]`, what: 'kernel-argument', target: arg.text, why: 'not applied: kernel arguments are the boot loader\'s, set by Ignition in the initramfs' });
    }
  }
}

function users(passwd: MapNode | undefined): IgnitionUser[] {
  return entries(passwd, 'users', ['passwd']).flatMap(({ entry }, i) => {
    const name = text(entry, 'name');
    if (name === undefined) return [];
    // Spec 2.0's `create` object holds what later specs put on the user itself.
    const create = objectAt(entry, ['create']) ?? entry;
    const groups = stringItems(create, 'groups', []).map((g) => g.text);
    return [
      {
        origin: `passwd.users[${i}]`,
        name,
        uid: integer(create, 'uid'),
        passwd: text(entry, 'passwordHash'),
        gecos: text(create, 'gecos'),
        homedir: text(create, 'homeDir'),
        noCreateHome: bool(create, 'noCreateHome') === true,
        primaryGroup: text(create, 'primaryGroup'),
        groups,
        noUserGroup: bool(create, 'noUserGroup') === true,
        system: bool(create, 'system') === true,
        noLogInit: bool(create, 'noLogInit') === true,
        shell: text(create, 'shell'),
        sshAuthorizedKeys: stringItems(entry, 'sshAuthorizedKeys', []).map((k) => k.text),
        shouldExist: bool(entry, 'shouldExist') ?? true,
      },
    ];
  });
}

function groups(passwd: MapNode | undefined): IgnitionGroup[] {
  return entries(passwd, 'groups', ['passwd']).flatMap(({ entry }, i) => {
    const name = text(entry, 'name');
    if (name === undefined) return [];
    return [{ origin: `passwd.groups[${i}]`, name, gid: integer(entry, 'gid'), passwordHash: text(entry, 'passwordHash'), system: bool(entry, 'system') === true, shouldExist: bool(entry, 'shouldExist') ?? true }];
  });
}

function units(section: MapNode | undefined, sectionName: string, network: boolean): IgnitionUnit[] {
  // Spec 2.x repeats a unit to change it: the later entry wins, as in Ignition.
  const byName = new Map<string, IgnitionUnit>();
  for (const { entry, path } of entries(section, 'units', [sectionName])) {
    const name = text(entry, 'name');
    if (name === undefined) continue;
    byName.delete(name);
    byName.set(name, {
      origin: `${sectionName}.units[${path[2]}]`,
      name,
      contents: str(entry, 'contents')?.text,
      enabled: bool(entry, 'enabled') ?? bool(entry, 'enable'),
      mask: bool(entry, 'mask'),
      dropIns: entries(entry, 'dropins', []).flatMap((d) => {
        const dropName = text(d.entry, 'name');
        return dropName === undefined ? [] : [{ name: dropName, contents: str(d.entry, 'contents')?.text }];
      }),
      network,
    });
  }
  return [...byName.values()];
}

/**
 * Typed settings from a validated Ignition tree of spec `spec`. Throws only on what validation
 * reports as an error (a data URL that does not decode).
 */
export function toIgnitionConfig(root: YNode, spec: Spec): IgnitionConfig {
  const storage = objectAt(root, ['storage']);
  const passwd = objectAt(root, ['passwd']);
  const notApplied: NotApplied[] = [];
  ignitionNotApplied(root, spec, notApplied);
  storageNotApplied(storage, notApplied);
  return {
    version: spec.version,
    groups: groups(passwd),
    users: users(passwd),
    files: files(storage, spec, notApplied),
    directories: directories(storage, spec, notApplied),
    links: links(storage, spec, notApplied),
    units: [...units(objectAt(root, ['systemd']), 'systemd', false), ...(spec.major === 2 ? units(objectAt(root, ['networkd']), 'networkd', true) : [])],
    notApplied,
  };
}
