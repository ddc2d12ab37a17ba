// Writes a large, valid cloud-config: `scale` times (200 users, 5000 write_files of 10 lines, 500 units).
// At scale 1 the file is about 1.7 MB, the size the reference validator takes minutes on.
function generateLargeConfig(scale = 1) {
  const out = ['#cloud-config', 'hostname: bench-host', 'users:'];
  for (let i = 0; i < Math.round(200 * scale); i++) {
    out.push(`  - name: user${i}`,
      `    passwd: $6$rounds=4096$saltsalt$${'x'.repeat(86)}`,
      `    groups: [sudo, docker]`,
      `    ssh_authorized_keys:`,
      `      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnHNVBe0dY0D6eG9hJcRUYvN5Sr8j3yz5eUfA1Zb2kq user${i}@example.com`);
  }
  out.push('write_files:');
  for (let i = 0; i < Math.round(5000 * scale); i++) {
    out.push(`  - path: /etc/bench/dir${i % 50}/file${i}.conf`, `    permissions: '0644'`, `    owner: root:root`, `    content: |`);
    for (let l = 0; l < 10; l++) out.push(`      key${l} = value ${l}`);
  }
  out.push('coreos:', '  units:');
  for (let i = 0; i < Math.round(500 * scale); i++) {
    out.push(`    - name: bench-${i}.service`, `      command: start`, `      enable: true`, `      content: |`,
      `        [Unit]`, `        Description=Bench unit ${i}`, `        After=network-online.target`, ``,
      `        [Service]`, `        ExecStart=/usr/bin/sleep infinity`, ``, `        [Install]`, `        WantedBy=multi-user.target`);
  }
  return out.join('\n') + '\n';
}
module.exports = { generateLargeConfig };
