/** Temporary target roots for apply tests: a minimal /etc with passwd, group, shadow and gshadow. */
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Tests that chown files and run useradd need root; CI runs as root. */
export const asRoot = process.getuid?.() === 0;

export function makeRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-root-'));
  mkdirSync(join(root, 'etc'));
  mkdirSync(join(root, 'home'));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\ncore:x:500:500:CoreOS Admin:/home/core:/bin/bash\netcd:x:232:232:etcd user:/var/lib/etcd:/sbin/nologin\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\ncore:x:500:\netcd:x:232:\nsudo:x:27:\ndocker:x:233:core\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\ncore:*:19000:0:99999:7:::\netcd:*:19000:0:99999:7:::\n');
  writeFileSync(join(root, 'etc/gshadow'), 'root:*::\ncore:!::\netcd:!::\nsudo:*::\ndocker:!::core\n');
  chmodSync(join(root, 'etc/shadow'), 0o640);
  chmodSync(join(root, 'etc/gshadow'), 0o640);
  mkdirSync(join(root, 'home/core'));
  execFileSync('chown', ['500:500', join(root, 'home/core')]);
  return root;
}

/**
 * Every path under `root` with its type, mode, owner and content (or link target), sorted: a tree
 * to compare. shadow's backup and lock files are left out: they are shadow's, not the result.
 */
export function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const rel = `${dir}/${name}`;
      const st = lstatSync(join(root, rel));
      const meta = `${rel} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.push(`${meta} -> ${readlinkSync(join(root, rel))}`);
      else if (st.isDirectory()) {
        out.push(`${meta}/`);
        walk(rel);
      } else if (!/\/etc\/(shadow|gshadow|passwd|group)(-|\.\d+|\.lock)$|\.pwd\.lock$/.test(rel)) {
        // (shadow's own backups and lock files: a tool killed mid-run leaves `group.PID` behind,
        // and shadow clears a stale lock itself the next time)
        out.push(`${meta} ${readFileSync(join(root, rel)).toString('base64')}`);
      }
    }
  };
  walk('');
  return out;
}
