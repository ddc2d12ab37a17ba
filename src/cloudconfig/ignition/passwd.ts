/**
 * passwd and kernelArguments: unique users, groups, SSH keys and kernel arguments; beyond
 * ignition-validate, user and group names useradd would refuse, SSH keys sshd cannot read, and
 * passwords that are not crypt hashes.
 */
import type { Finding } from '../../report/diagnostic';
import { finding } from '../rules/common';
import { accountNameProblem, isCryptHash, sshKeyProblem } from '../rules/users';
import type { YNode } from '../tree';
import { entries, objectAt, str, stringItems } from './fields';
import type { Spec } from './fields';

export function checkPasswd(root: YNode, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const passwd = objectAt(root, ['passwd']);
  for (const section of ['users', 'groups'] as const) {
    const what = section === 'users' ? 'user' : 'group';
    const seen = new Set<string>();
    for (const { entry, path } of entries(passwd, section, ['passwd'])) {
      const name = str(entry, 'name');
      if (name) {
        const problem = name.text === '' ? { severity: 'error' as const, message: `a ${what} needs a name` } : accountNameProblem(name.text, what);
        if (problem) out.push(finding(problem.severity, `${what}-name`, problem.message, [...path, 'name'], name.node.range));
        if (seen.has(name.text)) {
          out.push(
            spec.major === 3
              ? finding('error', 'duplicate-entry', `duplicate entry defined: ${what} ${name.text} is given twice`, [...path, 'name'], name.node.range)
              : finding('warning', 'duplicate-entry', `${what} ${name.text} is given twice`, [...path, 'name'], name.node.range),
          );
        }
        seen.add(name.text);
      }
      const hash = str(entry, 'passwordHash');
      if (hash && hash.text !== '' && !isCryptHash(hash.text)) {
        out.push(
          finding('error', 'plain-password', 'passwordHash looks like plain text, not a crypt hash: generate one with `mkpasswd --method=SHA-512` or `openssl passwd -6`', [...path, 'passwordHash'], hash.node.range),
        );
      }
      if (section === 'groups') continue;
      const keys = new Set<string>();
      for (const key of stringItems(entry, 'sshAuthorizedKeys', path)) {
        const problem = sshKeyProblem(key.text);
        if (problem) out.push(finding('error', 'ssh-key', problem, key.path, key.node.range));
        if (keys.has(key.text.trim()) && spec.major === 3) out.push(finding('error', 'duplicate-entry', 'duplicate entry defined: this SSH key is given twice', key.path, key.node.range));
        keys.add(key.text.trim());
      }
      const primary = str(entry, 'primaryGroup');
      const groups = [...(primary && primary.text !== '' && !/^\d+$/.test(primary.text) ? [{ ...primary, path: [...path, 'primaryGroup'] }] : []), ...stringItems(entry, 'groups', path)];
      for (const group of groups) {
        const problem = accountNameProblem(group.text, 'group');
        if (problem) out.push(finding(problem.severity, 'group-name', problem.message, group.path, group.node.range));
      }
    }
  }
  return out;
}

export function checkKernelArguments(root: YNode): Finding[] {
  const out: Finding[] = [];
  const kargs = objectAt(root, ['kernelArguments']);
  if (!kargs) return out;
  const lists = { shouldExist: new Set<string>(), shouldNotExist: new Set<string>() };
  for (const key of ['shouldExist', 'shouldNotExist'] as const) {
    for (const arg of stringItems(kargs, key, ['kernelArguments'])) {
      if (lists[key].has(arg.text)) out.push(finding('error', 'duplicate-entry', `duplicate entry defined: kernel argument ${JSON.stringify(arg.text)} is given twice`, arg.path, arg.node.range));
      lists[key].add(arg.text);
      if (key === 'shouldNotExist' && lists.shouldExist.has(arg.text)) {
        out.push(finding('error', 'karg-conflict', `kernel argument ${JSON.stringify(arg.text)} is in both shouldExist and shouldNotExist`, arg.path, arg.node.range));
      }
    }
  }
  return out;
}
