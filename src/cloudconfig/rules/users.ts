/**
 * users and SSH keys: names useradd refuses, passwords that are not crypt hashes, repeated users,
 * and SSH public keys that sshd cannot read.
 */
import type { Finding, PathSegment } from '../../report/diagnostic';
import { getPair, scalarText } from '../tree';
import type { YNode } from '../tree';
import { append, finding, mapEntries, stringField } from './common';

/** shadow's default rule (useradd(8)): lower case, digits, _ and -, not starting with a digit or -, at most 32. */
const portableName = /^[a-z_][a-z0-9_-]*\$?$/;
/** What useradd accepts at all on relaxed systems (BAD_NAME_OK): no colon, comma, slash or space, not numeric. */
const acceptedName = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/;

/** Hashes crypt(3) produces: $id$...$ forms, DES, and the locked or empty markers. */
const cryptHash = /^(?:\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[^\s:]+|[./0-9A-Za-z]{13}|_[./0-9A-Za-z]{19}|[!*][^\s:]*)$/;

/**
 * Why useradd or groupadd would refuse a user or group name (an error), or might (a warning):
 * undefined for a portable name.
 */
export function accountNameProblem(name: string, what: 'user' | 'group'): { severity: 'error' | 'warning'; message: string } | undefined {
  if (name.length > 32 || !acceptedName.test(name) || /^\d+$/.test(name)) {
    return { severity: 'error', message: `${JSON.stringify(name)} is not a valid ${what} name: use lower-case letters, digits, _ and -, at most 32 characters` };
  }
  if (!portableName.test(name)) {
    return {
      severity: 'warning',
      message: `${JSON.stringify(name)} is not a portable ${what} name (lower-case letters, digits, _ and -, not starting with a digit); ${what}add may refuse it`,
    };
  }
  return undefined;
}

/** Whether a password field holds a crypt(3) hash (or a locked or empty marker) rather than plain text. */
export function isCryptHash(text: string): boolean {
  return cryptHash.test(text);
}

export function checkUsers(root: YNode): Finding[] {
  const out: Finding[] = [];
  const seen = new Map<string, number>();
  for (const { entry, path } of mapEntries(getPair(root, 'users')?.value, ['users'])) {
    const name = stringField(entry, 'name');
    if (!name) {
      out.push(finding('warning', 'user-name', 'user has no name; it is skipped', path, getPair(entry, 'name')?.keyRange ?? entry.range));
    } else {
      const at = [...path, 'name'];
      const range = name.pair.value.range;
      const problem = accountNameProblem(name.text, 'user');
      if (problem) out.push(finding(problem.severity, 'user-name', problem.message, at, range));
      const first = seen.get(name.text);
      if (first !== undefined) {
        out.push(finding('warning', 'duplicate-user', `user ${name.text} is also defined by users[${first}]; only the first creates it`, at, range));
      } else seen.set(name.text, path[1] as number);
    }
    const passwd = stringField(entry, 'passwd');
    if (passwd && !isCryptHash(passwd.text)) {
      out.push(
        finding('error', 'plain-password', 'passwd looks like plain text, not a crypt hash: generate one with `mkpasswd --method=SHA-512` or `openssl passwd -6`', [...path, 'passwd'], passwd.pair.value.range),
      );
    }
    append(out, checkKeys(getPair(entry, 'ssh_authorized_keys')?.value, [...path, 'ssh_authorized_keys']));
  }
  append(out, checkKeys(getPair(root, 'ssh_authorized_keys')?.value, ['ssh_authorized_keys']));
  return out;
}

function checkKeys(list: YNode | undefined, path: PathSegment[]): Finding[] {
  if (list?.kind !== 'seq') return [];
  const out: Finding[] = [];
  list.items.forEach((item, i) => {
    const text = scalarText(item);
    if (text === undefined) return;
    const problem = sshKeyProblem(text);
    if (problem) out.push(finding('error', 'ssh-key', problem, [...path, i], item.range));
  });
  return out;
}

const keyTypes = new Set([
  'ssh-rsa', 'ssh-dss', 'ssh-ed25519', 'ssh-ed448', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-rsa-cert-v01@openssh.com', 'ssh-dss-cert-v01@openssh.com', 'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com', 'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com', 'sk-ssh-ed25519-cert-v01@openssh.com',
  'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com',
]);

/** Why an authorized_keys line is not a usable public key (sshd(8) AUTHORIZED_KEYS FILE FORMAT), or undefined. */
export function sshKeyProblem(line: string): string | undefined {
  const trimmed = line.trim();
  if (trimmed.startsWith('-----BEGIN')) return 'this is a PEM block (a private key or certificate?), not an OpenSSH public key line';
  const fields = splitOptions(trimmed);
  const typeAt = fields.findIndex((f) => keyTypes.has(f));
  if (typeAt === -1) {
    return fields[0]?.startsWith('ssh-') || fields[0]?.startsWith('ecdsa-')
      ? `unknown SSH key type ${JSON.stringify(fields[0])}`
      : 'not an SSH public key: want "TYPE BASE64 [COMMENT]", such as "ssh-ed25519 AAAA... user@host"';
  }
  if (typeAt > 1) return 'not an SSH public key: text before the key type is not a single options field';
  const type = fields[typeAt]!;
  const blob = fields[typeAt + 1];
  if (!blob) return `the ${type} key has no key data`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return `the ${type} key data is not valid base64`;
  const bytes = Buffer.from(blob, 'base64');
  // The blob starts with the key type again, as a length-prefixed string (RFC 4253, section 6.6).
  const len = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  const inner = len >= 0 && len <= bytes.length - 4 ? bytes.subarray(4, 4 + len).toString('latin1') : undefined;
  if (inner !== type) {
    return inner ? `the key data is a ${inner} key but the line says ${type}` : `the ${type} key data is truncated or corrupt`;
  }
  return undefined;
}

/** Splits on blanks outside double quotes (options such as command="a b" hold spaces). */
function splitOptions(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ' ' || ch === '\t')) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}
