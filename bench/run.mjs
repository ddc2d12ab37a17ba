// npm run bench: prints the figures, as ratios measured in this one run.
//   1. start-up: validating examples/ against `node -e 0`
//   2. a generated 1.7 MB config at 1x, 2x and 4x its size
//   3. 100 files in one invocation against one file
//   4. applying 500 files, 20 users and 50 units into a temporary root, offline
//   5. first boot from a stand-in EC2 metadata service: start to applied, and its split
//   6. reboot coordination: 200 agents on 5 slots, ours against locksmith's algorithm (bench/locks.ts)
//   7. applying an update payload of a 512 MiB USR image, against bzip2 | sha256sum | dd pipelines (bench/payload.ts)
//   8. the update journey: 20 simulated machines, total_slots 3, publish to the last machine on the new version (bench/journey.ts)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { generateLargeConfig } = require('./generate-large.cjs');
const { generateApplyConfig } = require('./generate-apply.cjs');
const bin = join(root, 'bin/coreos-cloudinit.js');
const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-'));

function once(args) {
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - started;
  if (r.status !== 0 && r.status !== 1) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

/** Runs the commands in turn, `runs` rounds, so drift in the machine's speed hits each alike. */
function compare(commands, runs) {
  const times = commands.map(() => []);
  for (const args of commands) once(args); // warm the file cache
  for (let i = 0; i < runs; i++) commands.forEach((args, k) => times[k].push(once(args)));
  return times.map((t) => {
    const sorted = [...t].sort((a, b) => a - b);
    return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0] };
  });
}

const ms = (x) => `${x.toFixed(1)} ms`;
const validate = (...files) => [bin, '--validate', '--from-file', ...files];

console.log(`bootsmith validator benchmarks: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`);

// 1. Start-up.
const examples = readdirSync(join(root, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join(root, 'examples', f));
const [bare, cli] = compare([['-e', '0'], validate(...examples)], 40);
console.log(`\n1. validating examples/ (${examples.length} files) vs node -e 0, median of 40 interleaved runs`);
console.log(`   node -e 0            ${ms(bare.median)} (min ${ms(bare.min)})`);
console.log(`   coreos-cloudinit     ${ms(cli.median)} (min ${ms(cli.min)})`);
console.log(`   ratio                ${(cli.median / bare.median).toFixed(2)}x (target: at most 1.3x)`);

// 2. A large config, 1x, 2x, 4x.
console.log('\n2. generated config: 200 users, 5000 write_files of 10 lines, 500 units per 1x; median of 5 runs');
const sizes = [1, 2, 4].map((scale) => {
  const file = join(work, `large-${scale}x.yaml`);
  writeFileSync(file, generateLargeConfig(scale));
  return { scale, file, bytes: readFileSync(file).length };
});
// --max-size: the 4x file is past the 2 MiB default limit.
const large = compare(sizes.map((s) => [bin, '--validate', '--max-size', String(64 << 20), '--from-file', s.file]), 5);
sizes.forEach((s, i) => {
  const t = large[i].median;
  console.log(
    `   ${s.scale}x  ${(s.bytes / 1e6).toFixed(2)} MB  ${(t / 1000).toFixed(3)} s  ` +
      `(${(t / large[0].median).toFixed(2)}x the 1x time; ${((s.bytes / 1e6) / ((t - bare.median) / 1000)).toFixed(1)} MB/s after start-up)`,
  );
});
console.log('   target: 1x under 0.5 s, and linear (the reference validator takes over 3 minutes on 1x)');

// 3. Many files in one invocation.
const many = [];
for (let i = 0; i < 100; i++) {
  const src = readFileSync(examples[i % examples.length], 'utf8').replace(/^hostname: .*$/m, `hostname: node-${i}`);
  const file = join(work, `many-${i}.yaml`);
  writeFileSync(file, src);
  many.push(file);
}
const [one, hundred] = compare([validate(many[0]), validate(...many)], 20);
console.log('\n3. 100 files in one invocation vs one file, median of 20 interleaved runs');
console.log(`   1 file               ${ms(one.median)}`);
console.log(`   100 files            ${ms(hundred.median)}`);
console.log(`   ratio                ${(hundred.median / one.median).toFixed(2)}x (target: well under 100x)`);

// 4. Apply, offline, into fresh temporary roots.
function freshRoot(name) {
  const root = join(work, name);
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'home/core'), { recursive: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\ncore:x:500:500::/home/core:/bin/bash\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\ncore:x:500:\nsudo:x:27:\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000::::::\ncore:*:19000::::::\n');
  writeFileSync(join(root, 'etc/gshadow'), 'root:*::\ncore:!::\nsudo:*::\n');
  return root;
}

function applyOnce(config, label, runs = 3) {
  const file = join(work, `${label}.yaml`);
  writeFileSync(file, config);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const root = freshRoot(`${label}-${i}`);
    const started = performance.now();
    const r = spawnSync(process.execPath, [bin, '--from-file', file, '--root', root], { encoding: 'utf8' });
    times.push(performance.now() - started);
    if (r.status !== 0) throw new Error(`applying ${label} failed:\n${r.stdout}${r.stderr}`);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

console.log('\n4. applying into a temporary root, offline (no systemd), median of 3 runs each');
if (process.getuid?.() !== 0) {
  console.log('   skipped: applying sets owners and runs useradd, which needs root');
} else {
  const base = applyOnce(generateApplyConfig({ files: 0, users: 0, units: 0 }), 'empty');
  const all = applyOnce(generateApplyConfig({ files: 500, users: 20, units: 50 }), 'all');
  const onlyFiles = applyOnce(generateApplyConfig({ files: 500, users: 0, units: 0 }), 'files');
  const onlyUsers = applyOnce(generateApplyConfig({ files: 0, users: 20, units: 0 }), 'users');
  const onlyUnits = applyOnce(generateApplyConfig({ files: 0, users: 0, units: 50 }), 'units');
  const per = (t, n) => `${((t - base) / n).toFixed(2)} ms`;
  console.log(`   500 files + 20 users + 50 units   ${(all / 1000).toFixed(3)} s wall`);
  console.log(`   an empty config (start-up, validation)  ${ms(base)}`);
  console.log(`   per file   ${per(onlyFiles, 500)}   (500 files: ${ms(onlyFiles - base)})`);
  console.log(`   per user   ${per(onlyUsers, 20)}   (20 users with SSH keys: ${ms(onlyUsers - base)})`);
  console.log(`   per unit   ${per(onlyUnits, 50)}   (50 units with a drop-in, enabled: ${ms(onlyUnits - base)})`);
  const parts = [['files', onlyFiles - base], ['users', onlyUsers - base], ['units', onlyUnits - base]].sort((a, b) => b[1] - a[1]);
  console.log(`   dominant: ${parts[0][0]} (${((parts[0][1] / (all - base)) * 100).toFixed(0)}% of the work after start-up)`);
}

// 5. From EC2: the user data of test/e2e/boot.test.ts, served by the tests' stand-in IMDS (IMDSv2).
async function fromEc2() {
  const { buildSync } = await import('esbuild');
  const fakeJs = join(work, 'fake-metadata.cjs');
  buildSync({ entryPoints: [join(root, 'test/support/fake-metadata.ts')], outfile: fakeJs, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  const { FakeMetadata } = require(fakeJs);
  const userData = [
    '#cloud-config',
    'coreos:',
    '  etcd2:',
    '    name: node-a',
    '    advertise_client_urls: http://$private_ipv4:2379',
    '    listen_client_urls: http://0.0.0.0:2379',
    '  units:',
    '    - name: web.service',
    '      enable: true',
    '      content: |',
    '        [Service]',
    '        ExecStart=/bin/sleep 300',
    '        [Install]',
    '        WantedBy=multi-user.target',
    'users:',
    '  - name: ops',
    '    groups: [sudo]',
    'write_files:',
    '  - path: /etc/motd',
    '    content: "This is $private_ipv4"',
    '',
  ].join('\n');
  const server = new FakeMetadata({ imds: 'v2', userData, metaData: { 'instance-id': 'i-bench', 'local-ipv4': '10.0.0.5', hostname: 'bench' }, keys: { k: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 k' } });
  await server.start();
  const runs = [];
  for (let i = 0; i < 7; i++) {
    const target = freshRoot(`ec2-${i}`);
    const started = performance.now();
    const out = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [bin, '--from-ec2-metadata', server.url, '--root', target, '--timings'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.stderr.on('data', (d) => (text += d));
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`applying from EC2 failed:\n${text}`))));
    });
    const wall = performance.now() - started;
    const m = /timings: fetch ([\d.]+) ms, validate ([\d.]+) ms, apply ([\d.]+) ms/.exec(out);
    runs.push({ wall, fetch: Number(m[1]), validate: Number(m[2]), apply: Number(m[3]) });
  }
  await server.stop();
  const median = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  const wall = median('wall');
  const parts = ['fetch', 'validate', 'apply'].map((k) => [k, median(k)]);
  const rest = wall - parts.reduce((sum, [, t]) => sum + t, 0);
  console.log('\n5. first boot from a stand-in EC2 metadata service (IMDSv2, loopback), offline apply into a temp root; median of 7');
  console.log(`   start to applied     ${ms(wall)}`);
  for (const [k, t] of parts) console.log(`   ${k.padEnd(20)} ${ms(t)} (${((t / wall) * 100).toFixed(0)}%)`);
  console.log(`   start-up and exit    ${ms(rest)} (${((rest / wall) * 100).toFixed(0)}%)`);
}

if (process.getuid?.() === 0) await fromEc2();
else console.log('\n5. skipped: applying needs root');

// 6. Reboot coordination against a real etcd (bundled here; etcd3 stays in node_modules).
if (spawnSync('etcd', ['--version']).status === 0) {
  const { buildSync } = await import('esbuild');
  const locks = join(root, 'dist', 'bench-locks.cjs');
  buildSync({ entryPoints: [join(root, 'bench/locks.ts')], outfile: locks, bundle: true, platform: 'node', format: 'cjs', external: ['etcd3'], logLevel: 'warning' });
  const r = spawnSync(process.execPath, [locks], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the reboot-coordination benchmark failed');
} else console.log('\n6. skipped: needs etcd (Debian etcd-server)');

// 7. Applying an update payload against shell pipelines (bundled as 6 is). The disk image is a
// sparse file with a GPT written by images/make.ts itself: no mkfs is needed, only bzip2.
if (spawnSync('bzip2', ['--help']).status === 0) {
  const { buildSync } = await import('esbuild');
  const payload = join(root, 'dist', 'bench-payload.cjs');
  buildSync({ entryPoints: [join(root, 'bench/payload.ts')], outfile: payload, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  const r = spawnSync(process.execPath, [payload], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the payload-apply benchmark failed');
} else console.log('\n7. skipped: needs bzip2');

// 8. The update journey of a fleet (bundled as 6 is; etcd3 and dbus-next stay in node_modules).
// It runs the built programs (bin/ and dist/), and needs etcd, dbus-daemon and the image tools.
const journeyTools = ['etcd', 'dbus-daemon', 'bzip2', 'mkfs.ext4', 'debugfs'];
const missing = journeyTools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
if (missing.length === 0) {
  const { buildSync } = await import('esbuild');
  const journey = join(root, 'dist', 'bench-journey.cjs');
  buildSync({ entryPoints: [join(root, 'bench/journey.ts')], outfile: journey, bundle: true, platform: 'node', format: 'cjs', external: ['etcd3', 'dbus-next'], logLevel: 'warning' });
  const r = spawnSync(process.execPath, [journey], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the update-journey benchmark failed');
} else console.log(`\n8. skipped: needs ${missing.join(', ')}`);

rmSync(work, { recursive: true, force: true });
