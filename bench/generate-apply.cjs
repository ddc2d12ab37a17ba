// A cloud-config for apply benchmarks and crash tests: `files` write_files (some owned by users,
// some secret), `users` users with SSH keys, `units` units with drop-ins, enabled.
const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6';

/** The write_files of the config: `count` files of 8 lines in 20 directories, a tenth of them secret (0600). */
function benchFiles(count) {
  return Array.from({ length: count }, (_, i) => ({
    path: `/etc/bench/d${i % 20}/file${i}.conf`,
    mode: i % 10 === 0 ? 0o600 : 0o644,
    content: Array.from({ length: 8 }, (_, l) => `setting_${l} = value ${l} of file ${i}\n`).join(''),
  }));
}

function generateApplyConfig({ files = 500, users = 20, units = 50 } = {}) {
  const out = ['#cloud-config', 'hostname: bench', 'users:'];
  for (let i = 0; i < users; i++) {
    out.push(`  - name: user${i}`, `    passwd: $6$salt${i}$${'h'.repeat(40)}`, '    groups: [sudo]', '    ssh_authorized_keys:', `      - ${key} user${i}@example.com`);
  }
  out.push('write_files:');
  for (const [i, f] of benchFiles(files).entries()) {
    out.push(`  - path: ${f.path}`, `    permissions: '0${f.mode.toString(8)}'`);
    if (i % 5 === 0 && users > 0) out.push(`    owner: user${i % users}:sudo`);
    out.push('    content: |', ...f.content.trimEnd().split('\n').map((line) => `      ${line}`));
  }
  out.push('coreos:', '  update:', '    reboot-strategy: etcd-lock', '  units:');
  for (let i = 0; i < units; i++) {
    out.push(`    - name: bench-${i}.service`, '      enable: true', '      content: |', '        [Unit]', `        Description=Bench ${i}`, '        [Service]',
      '        ExecStart=/bin/sleep infinity', '        [Install]', '        WantedBy=multi-user.target', '      drop_ins:', '        - name: 10-env.conf', '          content: |',
      '            [Service]', `            Environment=INDEX=${i}`);
  }
  return `${out.join('\n')}\n`;
}

module.exports = { generateApplyConfig, benchFiles };
