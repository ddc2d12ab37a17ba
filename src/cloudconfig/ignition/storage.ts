/**
 * storage: absolute and unique paths across files, directories and links; modes; owners; and the
 * constraints the spec puts on disks, partitions, RAID arrays, filesystems and LUKS devices.
 */
import { posix } from 'node:path';
import type { Finding, PathSegment } from '../../report/diagnostic';
import { finding } from '../rules/common';
import { accountNameProblem } from '../rules/users';
import { getPair } from '../tree';
import type { MapNode, YNode } from '../tree';
import { entries, int, isSet, isTrue, objectAt, since, str, stringItems } from './fields';
import type { Spec } from './fields';

export function checkStorage(root: YNode, spec: Spec): Finding[] {
  const storage = objectAt(root, ['storage']);
  if (!storage) return [];
  return checkNodes(storage, spec).concat(checkDisks(storage, spec), checkRaid(storage, spec), checkFilesystems(storage, spec), checkLuks(storage));
}

const nodeKinds = ['files', 'directories', 'links'] as const;

function checkNodes(storage: MapNode, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const seen = new Map<string, string>();
  const filesystems = spec.major === 2 ? filesystemNames(storage) : undefined;
  const links = spec.major === 3 ? symlinkPaths(storage) : new Set<string>();
  for (const kind of nodeKinds) {
    for (const { entry, path } of entries(storage, kind, ['storage'])) {
      const p = str(entry, 'path');
      if (p) {
        if (!p.text.startsWith('/')) {
          out.push(finding('error', 'relative-path', `path ${JSON.stringify(p.text)} is not absolute`, [...path, 'path'], p.node.range));
        } else {
          if (spec.major === 3 && clean(p.text) !== p.text) {
            out.push(finding('error', 'dirty-path', `path ${JSON.stringify(p.text)} is not fully simplified: write ${clean(p.text)}`, [...path, 'path'], p.node.range));
          }
          const through = ancestorIn(clean(p.text), links);
          if (through !== undefined) {
            out.push(finding('error', 'path-through-link', `${p.text} is under ${through}, which this config makes a symbolic link`, [...path, 'path'], p.node.range));
          }
          const fs = spec.major === 2 ? `${str(entry, 'filesystem')?.text ?? ''}:` : '';
          const key = fs + clean(p.text);
          const first = seen.get(key);
          if (first !== undefined) {
            // Spec 2.x allowed repeats (the later entry wins, or appends); 3.x refuses them.
            out.push(
              spec.major === 3
                ? finding('error', 'duplicate-path', `duplicate entry defined: ${p.text} is also ${first}`, [...path, 'path'], p.node.range)
                : finding('warning', 'duplicate-path', `${p.text} is also ${first}; the later entry wins`, [...path, 'path'], p.node.range),
            );
          } else seen.set(key, `storage.${kind}[${path[2]}]`);
        }
      }
      if (kind !== 'links') out.push(...checkMode(entry, path, spec));
      out.push(...checkOwner(entry, 'user', path), ...checkOwner(entry, 'group', path));
      if (kind === 'links') {
        const target = str(entry, 'target');
        if (target && target.text === '') out.push(finding('error', 'link-target', 'a link needs a target', [...path, 'target'], target.node.range));
        if (isTrue(entry, 'hard') && (isSet(entry, 'user') || isSet(entry, 'group'))) {
          out.push(finding('warning', 'hard-link-owner', 'user and group are ignored for a hard link', path, entry.range));
        }
      }
      if (kind === 'files' && spec.major === 3 && isTrue(entry, 'overwrite') && !isSet(objectAt(entry, ['contents']), 'source')) {
        const at = getPair(entry, 'overwrite')!.value;
        out.push(finding('error', 'overwrite-without-source', 'overwrite is true but contents.source is not set: give the contents to write', [...path, 'overwrite'], at.range));
      }
      if (kind === 'files' && spec.major === 2 && isTrue(entry, 'append') && isTrue(entry, 'overwrite')) {
        out.push(finding('error', 'append-overwrite', 'append and overwrite cannot both be true', [...path, 'append'], entry.range));
      }
      const fs = filesystems && str(entry, 'filesystem');
      if (fs && !filesystems!.has(fs.text)) {
        out.push(
          finding('error', 'unknown-filesystem', `no filesystem named ${JSON.stringify(fs.text)}: name one of storage.filesystems, or "root"`, [...path, 'filesystem'], fs.node.range),
        );
      }
    }
  }
  return out;
}

/** An absolute path as Go's path.Clean gives it: no `.`, `..`, repeated or trailing slashes. */
function clean(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/** The paths the config makes symbolic links (cleaned). */
function symlinkPaths(storage: MapNode): Set<string> {
  const out = new Set<string>();
  for (const { entry } of entries(storage, 'links', ['storage'])) {
    const p = str(entry, 'path');
    if (p && p.text.startsWith('/') && !isTrue(entry, 'hard')) out.add(clean(p.text));
  }
  return out;
}

/** The nearest proper ancestor of `path` that is in `set`, if any. */
function ancestorIn(path: string, set: Set<string>): string | undefined {
  if (set.size === 0) return undefined;
  for (let dir = posix.dirname(path); dir !== '/' && dir !== '.'; dir = posix.dirname(dir)) if (set.has(dir)) return dir;
  return undefined;
}

/** The filesystem names files, directories and links of spec 2.x may use. */
function filesystemNames(storage: MapNode): Set<string> {
  const names = new Set(['root']);
  for (const { entry } of entries(storage, 'filesystems', ['storage'])) {
    const name = str(entry, 'name');
    if (name) names.add(name.text);
  }
  return names;
}

/**
 * A mode must be a permission mode (0 to 07777). Setuid, setgid and sticky bits are supported from
 * spec 3.4.0. A mode such as 644 or 755 was meant in octal: JSON has only decimal numbers.
 */
function checkMode(entry: MapNode, path: PathSegment[], spec: Spec): Finding[] {
  const mode = int(entry, 'mode');
  if (!mode) return [];
  const at = [...path, 'mode'];
  const m = mode.value;
  if (m < 0 || m > 0o7777) return [finding('error', 'invalid-mode', `illegal file mode ${m}: a mode is 0 to 4095 (07777), in decimal`, at, mode.node.range)];
  const octal = `0${m.toString(8).padStart(3, '0')}`;
  // 644 is 01204: the sticky bit and odd permissions. Three octal-looking digits over 511 are almost
  // always an octal mode written in decimal; real sticky modes are written as 1023 (01777) and such.
  if (m >= 0o1000 && /^[0-7]{3}$/.test(String(m))) {
    return [
      finding('warning', 'decimal-mode', `mode ${m} is ${octal} in octal; JSON numbers are decimal: write ${parseInt(String(m), 8)} for 0${m}`, at, mode.node.range),
    ];
  }
  if (m & 0o7000 && spec.major === 3 && !since(spec, 3, 4)) {
    return [finding('error', 'special-mode', `mode ${octal} has setuid, setgid or sticky bits, which spec ${spec.version} does not support (3.4.0 does)`, at, mode.node.range)];
  }
  return [];
}

/** user and group of a node: an id or a name, not both; a name useradd would take. */
function checkOwner(entry: MapNode, key: 'user' | 'group', path: PathSegment[]): Finding[] {
  const owner = objectAt(entry, [key]);
  if (!owner) return [];
  const out: Finding[] = [];
  const name = str(owner, 'name');
  if (name && isSet(owner, 'id')) {
    out.push(finding('error', 'owner', `${key} has both an id and a name: give one`, [...path, key], owner.range));
  }
  if (name && name.text !== '') {
    const problem = accountNameProblem(name.text, key);
    if (problem) out.push(finding(problem.severity, `${key}-name`, problem.message, [...path, key, 'name'], name.node.range));
  }
  return out;
}

const guidPattern = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

function absoluteDevice(entry: MapNode, path: PathSegment[], key = 'device'): Finding[] {
  const device = str(entry, key);
  if (!device || device.text.startsWith('/')) return [];
  return [finding('error', 'relative-path', `device ${JSON.stringify(device.text)} is not an absolute path`, [...path, key], device.node.range)];
}

/** Reports a repeated value of `key` among list entries (spec 3.x: each must be unique). */
function unique(list: Array<{ entry: MapNode; path: PathSegment[] }>, key: string, what: string, severity: 'error' | 'warning' = 'error'): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const { entry, path } of list) {
    const v = str(entry, key);
    if (!v || v.text === '') continue;
    if (seen.has(v.text)) out.push(finding(severity, 'duplicate-entry', `duplicate entry defined: ${what} ${v.text} is given twice`, [...path, key], v.node.range));
    seen.add(v.text);
  }
  return out;
}

function checkDisks(storage: MapNode, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const disks = entries(storage, 'disks', ['storage']);
  if (spec.major === 3) out.push(...unique(disks, 'device', 'disk'));
  for (const { entry, path } of disks) {
    out.push(...absoluteDevice(entry, path));
    const numbers = new Set<number>();
    const labels = new Set<string>();
    for (const part of entries(entry, 'partitions', path)) {
      const label = str(part.entry, 'label');
      if (label && label.text.length > 36) out.push(finding('error', 'partition', `partition label is ${label.text.length} characters; GPT allows 36`, [...part.path, 'label'], label.node.range));
      if (label && spec.major === 3 && label.text.includes(':')) out.push(finding('error', 'partition', 'partition label will be truncated to text before the colon', [...part.path, 'label'], label.node.range));
      if (label && label.text !== '' && spec.major === 3) {
        if (labels.has(label.text)) out.push(finding('error', 'duplicate-entry', `partition label ${label.text} is given twice`, [...part.path, 'label'], label.node.range));
        labels.add(label.text);
      }
      for (const key of ['typeGuid', 'guid']) {
        const guid = str(part.entry, key);
        if (guid && guid.text !== '' && !guidPattern.test(guid.text)) {
          out.push(finding('error', 'partition', `${key} ${JSON.stringify(guid.text)} is not a GUID (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)`, [...part.path, key], guid.node.range));
        }
      }
      const number = int(part.entry, 'number');
      if (number && number.value !== 0) {
        if (numbers.has(number.value)) out.push(finding('error', 'duplicate-entry', `duplicate entry defined: partition ${number.value} is given twice`, [...part.path, 'number'], number.node.range));
        numbers.add(number.value);
      }
      const shouldExist = part.entry.pairs.find((p) => p.key === 'shouldExist')?.value;
      if (shouldExist?.kind === 'scalar' && shouldExist.value === false) {
        if (!number || number.value === 0) out.push(finding('error', 'partition', 'shouldExist is false but no partition number is given', [...part.path, 'shouldExist'], shouldExist.range));
        const extra = ['label', 'start', 'size', 'startMiB', 'sizeMiB', 'guid', 'typeGuid'].filter((k) => isSet(part.entry, k));
        if (extra.length > 0) {
          out.push(finding('error', 'partition', `shouldExist is false, so ${extra.join(', ')} must be left out`, [...part.path, 'shouldExist'], shouldExist.range));
        }
      }
    }
  }
  return out;
}

const raidLevels = ['linear', 'raid0', '0', 'stripe', 'raid1', '1', 'mirror', 'raid4', '4', 'raid5', '5', 'raid6', '6', 'raid10', '10'];

function checkRaid(storage: MapNode, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const arrays = entries(storage, 'raid', ['storage']);
  if (spec.major === 3) out.push(...unique(arrays, 'name', 'RAID array'));
  for (const { entry, path } of arrays) {
    const level = str(entry, 'level');
    if (level && !raidLevels.includes(level.text)) {
      out.push(finding('error', 'raid-level', `unrecognized raid level ${JSON.stringify(level.text)}: want linear, raid0, raid1, raid4, raid5, raid6 or raid10`, [...path, 'level'], level.node.range));
    }
    const spares = int(entry, 'spares');
    if (spares && spares.value > 0 && level && ['linear', 'raid0', '0', 'stripe'].includes(level.text)) {
      out.push(finding('error', 'raid-level', `spares are not supported for ${level.text} arrays`, [...path, 'spares'], spares.node.range));
    }
    if (spares && spares.value < 0) out.push(finding('error', 'raid-level', 'spares cannot be negative', [...path, 'spares'], spares.node.range));
    for (const device of stringItems(entry, 'devices', path)) {
      if (!device.text.startsWith('/')) out.push(finding('error', 'relative-path', `device ${JSON.stringify(device.text)} is not an absolute path`, device.path, device.node.range));
    }
  }
  return out;
}

/** Longest label each filesystem takes (mkfs refuses longer ones). */
const labelLimits: Record<string, number> = { ext4: 16, xfs: 12, vfat: 11, swap: 15, btrfs: 256 };

function checkFilesystems(storage: MapNode, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const filesystems = entries(storage, 'filesystems', ['storage']);
  if (spec.major === 3) out.push(...unique(filesystems, 'device', 'filesystem device'));
  else out.push(...unique(filesystems, 'name', 'filesystem', 'warning'));
  for (const { entry, path } of filesystems) {
    let fs: MapNode = entry;
    let fsPath = path;
    if (spec.major === 2) {
      const mount = objectAt(entry, ['mount']);
      const hasPath = isSet(entry, 'path');
      if (!mount && !hasPath) out.push(finding('error', 'filesystem', 'a filesystem needs "mount" or "path"', path, entry.range));
      if (mount && hasPath) out.push(finding('error', 'filesystem', 'a filesystem takes "mount" or "path", not both', path, entry.range));
      const p = str(entry, 'path');
      if (p && !p.text.startsWith('/')) out.push(finding('error', 'relative-path', `path ${JSON.stringify(p.text)} is not absolute`, [...path, 'path'], p.node.range));
      if (!mount) continue;
      fs = mount;
      fsPath = [...path, 'mount'];
    } else {
      const p = str(entry, 'path');
      if (p && p.text !== '' && !p.text.startsWith('/')) out.push(finding('error', 'relative-path', `path ${JSON.stringify(p.text)} is not absolute`, [...path, 'path'], p.node.range));
      const format = str(entry, 'format');
      if (p && p.text !== '' && format && (format.text === 'swap' || format.text === 'none')) {
        out.push(finding('error', 'filesystem', `a ${format.text} filesystem cannot be mounted: leave out path`, [...path, 'path'], p.node.range));
      }
    }
    out.push(...absoluteDevice(fs, fsPath));
    const format = str(fs, 'format');
    const label = str(fs, 'label');
    const limit = format && labelLimits[format.text];
    if (label && limit && label.text.length > limit) {
      out.push(finding('error', 'filesystem', `${format!.text} labels are at most ${limit} characters; this one has ${label.text.length}`, [...fsPath, 'label'], label.node.range));
    }
  }
  return out;
}

function checkLuks(storage: MapNode): Finding[] {
  const out: Finding[] = [];
  const devices = entries(storage, 'luks', ['storage']);
  out.push(...unique(devices, 'name', 'LUKS device'));
  for (const { entry, path } of devices) {
    out.push(...absoluteDevice(entry, path));
    const name = str(entry, 'name');
    if (name && name.text.includes('/')) out.push(finding('error', 'luks', 'a LUKS device name cannot contain "/"', [...path, 'name'], name.node.range));
    const clevis = objectAt(entry, ['clevis']);
    if (clevis && isSet(clevis, 'custom')) {
      const tangs = getPair(clevis, 'tang')?.value;
      const others = [
        ...(tangs?.kind === 'seq' && tangs.items.length > 0 ? ['tang'] : []),
        ...(isTrue(clevis, 'tpm2') ? ['tpm2'] : []),
        ...(isSet(clevis, 'threshold') ? ['threshold'] : []),
      ];
      if (others.length > 0) out.push(finding('error', 'luks', `clevis.custom cannot be combined with ${others.join(', ')}`, [...path, 'clevis', 'custom'], objectAt(clevis, ['custom'])!.range));
    }
    const label = str(entry, 'label');
    if (label && label.text.length > 47) out.push(finding('error', 'luks', `a LUKS label is at most 47 characters; this one has ${label.text.length}`, [...path, 'label'], label.node.range));
    const pin = str(objectAt(clevis, ['custom']), 'pin');
    if (pin && !['tpm2', 'tang', 'sss'].includes(pin.text)) {
      out.push(finding('error', 'luks', `unsupported clevis pin ${JSON.stringify(pin.text)}: want tpm2, tang or sss`, [...path, 'clevis', 'custom', 'pin'], pin.node.range));
    }
    const threshold = int(clevis, 'threshold');
    if (threshold && threshold.value < 1) out.push(finding('error', 'luks', 'clevis threshold must be at least 1', [...path, 'clevis', 'threshold'], threshold.node.range));
    for (const tang of entries(clevis, 'tang', [...path, 'clevis'])) {
      const url = str(tang.entry, 'url');
      if (url && !/^https?:\/\/[^\s/]+/.test(url.text)) out.push(finding('error', 'invalid-url', `tang url ${JSON.stringify(url.text)} is not an http or https URL`, [...tang.path, 'url'], url.node.range));
      const advertisement = str(tang.entry, 'advertisement');
      if (advertisement && advertisement.text !== '' && !isJson(advertisement.text)) {
        out.push(finding('error', 'luks', 'the tang advertisement is not valid JSON', [...tang.path, 'advertisement'], advertisement.node.range));
      }
    }
    if (clevis) out.push(...unique(entries(clevis, 'tang', [...path, 'clevis']), 'url', 'tang server'));
    if (isTrue(objectAt(entry, ['cex']), 'enabled') && (clevis || isSet(entry, 'keyFile'))) {
      out.push(finding('error', 'luks', 'cex cannot be combined with clevis or keyFile', [...path, 'cex'], objectAt(entry, ['cex'])!.range));
    }
  }
  return out;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
