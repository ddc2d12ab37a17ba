/**
 * write_files: content that cannot be decoded, files under read-only /usr, relative and repeated
 * paths, and owners chown would not take.
 */
import { posix } from 'node:path';
import type { Finding } from '../../report/diagnostic';
import { getPair } from '../tree';
import { decodeContent } from '../encoding';
import type { MapNode, YNode } from '../tree';
import { append, finding, mapEntries, stringField } from './common';

export function checkFiles(root: YNode): Finding[] {
  const out: Finding[] = [];
  const seen = new Map<string, number>();
  for (const { entry, path } of mapEntries(getPair(root, 'write_files')?.value, ['write_files'])) {
    const file = stringField(entry, 'path');
    if (file) {
      const cleaned = isClean(file.text) ? file.text : posix.normalize(file.text);
      const dir = posix.dirname(cleaned.startsWith('/') ? cleaned : `/${cleaned}`);
      const at = [...path, 'path'];
      if (dir === '/usr' || dir.startsWith('/usr/')) {
        out.push(finding('error', 'read-only-path', `${file.text} cannot be written: /usr is a read-only filesystem`, at, file.pair.value.range));
      }
      if (!file.text.startsWith('/')) {
        out.push(finding('warning', 'relative-path', `path ${JSON.stringify(file.text)} is relative; it is written as /${cleaned}: write the absolute path`, at, file.pair.value.range));
      }
      const key = cleaned.startsWith('/') ? cleaned : posix.normalize(`/${cleaned}`);
      const first = seen.get(key);
      if (first !== undefined) {
        out.push(finding('warning', 'duplicate-path', `${key} is also written by write_files[${first}]; the later entry wins`, at, file.pair.value.range));
      } else seen.set(key, path[1] as number);
    }
    append(out, checkContent(entry, path));
    const owner = stringField(entry, 'owner');
    if (owner && !validOwner(owner.text)) {
      out.push(
        finding('error', 'owner-syntax', `owner ${JSON.stringify(owner.text)} is not "user", "user:group" or numeric ids`, [...path, 'owner'], owner.pair.value.range),
      );
    } else if (owner) {
      const id = owner.text.split(/[:.]/).find((part) => /^\d+$/.test(part) && Number(part) > maxId);
      if (id !== undefined) {
        out.push(
          finding('error', 'owner-id-range', `owner id ${id} is out of range: ids are 0 to ${maxId} (${maxId + 1} is -1 to chown, "no change")`, [...path, 'owner'], owner.pair.value.range),
        );
      }
    }
  }
  return out;
}

/** An absolute path with no `.`, `..`, empty or trailing components, which normalizing would not change. */
function isClean(path: string): boolean {
  return path.startsWith('/') && path.split('/').every((part, i) => i === 0 || (part !== '' && part !== '.' && part !== '..'));
}

const namePart = '(?:[A-Za-z_][A-Za-z0-9_.-]*\\$?|\\d+)';
const ownerPattern = new RegExp(`^(?:${namePart}(?:[:.]${namePart}?)?|:${namePart})$`);

/** Largest user or group id: 2^32 - 2, since (uid_t)-1, 4294967295, means "leave unchanged" to chown(2). */
export const maxId = 2 ** 32 - 2;

/** What chown takes: `user`, `user:group`, `user:`, `:group`, with names or numeric ids. */
export function validOwner(owner: string): boolean {
  return ownerPattern.test(owner);
}

function checkContent(entry: MapNode, path: (string | number)[]): Finding[] {
  const encodingPair = getPair(entry, 'encoding');
  const contentPair = getPair(entry, 'content');
  const encoding = encodingPair?.value.kind === 'scalar' ? encodingPair.value.source : undefined;
  if (!encoding || !contentPair || contentPair.value.kind !== 'scalar' || contentPair.value.value === null) return [];
  const value = contentPair.value.value;
  // !!binary content is already bytes; the encoding then applies to those bytes.
  const bytes = value instanceof Uint8Array ? Buffer.from(value) : Buffer.from(contentPair.value.source, 'utf8');
  const decoded = decodeContent(bytes, encoding);
  if (typeof decoded !== 'string') return [];
  return [finding('error', 'undecodable-content', `content cannot be decoded as "${encoding}": ${decoded}`, [...path, 'content'], contentPair.value.range)];
}
