// npm run bench [-- SECTION...]: prints the figures, as ratios measured in this one run; each section
// says when it starts and how long it took, each target whether it was met, and a summary ends it.
// Sections by number (npm run bench -- 1 3): only those.
//   1. start-up: validating examples/, and applying a small config, against `node -e 0`
//   2. a generated 1.7 MB config at 1x, 2x and 4x its size; converting it to Ignition and Butane
//   3. 100 files in one invocation against one file
//   4. applying 500 files, 20 users and 50 units into a temporary root, offline
//   5. first boot from a stand-in EC2 metadata service: start to applied, and its split
//   6. reboot coordination: 200 agents on 5 slots, ours against locksmith's algorithm; ours at 1,000 and 10,000 agents (bench/locks.ts)
//   7. applying an update payload of a 192 MiB USR image, against the floor: its chunks decompressed on every core, then hashing, writing and syncing (bench/payload.ts)
//   8. the update journey: 20 simulated machines, total_slots 3, publish to the last machine on the new version (bench/journey.ts)
//   9. 10,000 machines on one update server: checks/s, p50/p99 latency, memory per machine (bench/update-server.ts)
//  10. the machine image: a cold and a cached build, and its first boot in QEMU to provisioned (bench/machine.ts)
//  11. the update journey of two real machines in QEMU: publish to both marked good (bench/machines.ts)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { generateLargeConfig } = require('./generate-large.cjs');
const { benchFiles, generateApplyConfig } = require('./generate-apply.cjs');
const bin = join(root, 'bin/coreos-cloudinit.js');
const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-'));

/** Runs node with `args` (or the arguments a function gives, made anew for each run) and returns the wall time. */
function once(argsOrMake, env = process.env) {
  const args = typeof argsOrMake === 'function' ? argsOrMake() : argsOrMake;
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  const ms = performance.now() - started;
  if (r.status !== 0 && r.status !== 1) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

/** Runs the commands in turn, `runs` rounds, so drift in the machine's speed hits each alike. */
function compare(commands, runs, env = process.env) {
  const times = commands.map(() => []);
  for (const args of commands) once(args, env); // warm the file cache
  for (let i = 0; i < runs; i++) commands.forEach((args, k) => times[k].push(once(args, env)));
  return times.map((t) => {
    const sorted = [...t].sort((a, b) => a - b);
    return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0] };
  });
}

const ms = (x) => `${x.toFixed(1)} ms`;
const validate = (...files) => [bin, '--validate', '--from-file', ...files];

/** Each section: its title, and a rough duration for a first run (later runs show the last run's). */
const sections = {
  1: ['start-up', 15],
  2: ['a large config', 40],
  3: ['many files in one invocation', 20],
  4: ['applying into a temporary root', 60],
  5: ['first boot from a stand-in EC2 service', 15],
  6: ['reboot coordination against etcd', 480],
  7: ['applying an update payload', 150],
  8: ['the update journey of a fleet', 300],
  9: ['10,000 machines on one update server', 60],
  10: ['the machine image and its first boot', 600],
  11: ['the update journey of two real machines', 900],
};
const sectionCount = Object.keys(sections).length;
const chosen = process.argv.slice(2).map(Number);
const bad = chosen.filter((n) => !sections[n]);
if (bad.length > 0) {
  console.error(`bench: no section ${bad.join(', ')}; the sections are 1 to ${sectionCount}`);
  process.exit(2);
}
const runs = (n) => chosen.length === 0 || chosen.includes(n);
// The durations of the last run, to say how long this one takes.
const durationsFile = join(root, 'dist', 'bench-durations.json');
const last = existsSync(durationsFile) ? JSON.parse(readFileSync(durationsFile, 'utf8')) : {};
const took = {};
const targets = [];
const duration = (s) => (s < 90 ? `${Math.round(s)} s` : `${(s / 60).toFixed(1)} min`);
const estimate = (n) => last[n] ?? sections[n][1];

/** Runs section `n` when chosen: says it starts, and how long it took. */
async function section(n, body) {
  if (!runs(n)) return;
  console.log(`\n== section ${n} of ${sectionCount}: ${sections[n][0]} (about ${duration(estimate(n))}${last[n] ? ', as last time' : ''})`);
  const started = performance.now();
  await body();
  took[n] = (performance.now() - started) / 1000;
  console.log(`   (section ${n} took ${duration(took[n])})`);
}

/** Prints a target and whether this run met it; the summary lists them all again. */
function target(n, text, met) {
  targets.push({ n, text, met });
  console.log(`   target: ${text}: ${met ? 'met' : 'MISSED'}`);
}

const planned = Object.keys(sections).map(Number).filter(runs);
console.log(`bootsmith benchmarks: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`);
console.log(
  `sections ${planned.join(', ')} of 1-${sectionCount} (choose with: npm run bench -- N...); about ${duration(planned.reduce((t, n) => t + estimate(n), 0))} in all` +
    `${planned.every((n) => last[n]) ? ' (the last run\'s times)' : ' (rough; the next run shows this one\'s times)'}`,
);

const examples = readdirSync(join(root, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join(root, 'examples', f));
// node -e 0: what start-up costs any program (section 2 takes it from section 1, or measures it).
let bare;

// 1. Start-up.
// The apply path too: a small config (a file, a unit) applied offline into a fresh root each run.
const smallConfig = join(work, 'small.yaml');
writeFileSync(smallConfig, '#cloud-config\nhostname: small\nwrite_files:\n  - path: /etc/motd\n    content: hello\ncoreos:\n  units:\n    - name: a.service\n      content: |\n        [Service]\n        ExecStart=/bin/true\n');
let smallRoots = 0;
const applySmall = () => [bin, '--from-file', smallConfig, '--root', freshRoot(`small-${smallRoots++}`)];

// Settings that make every Node start slower, which a booted machine does not have: this sandbox
// sets NODE_EXTRA_CA_CERTS, and reading its 220 KB of certificates doubles `node -e 0` (34 -> 64 ms),
// which shrinks every ratio against it. The target is judged without them.
const startupSettings = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'].filter((k) => process.env[k]);
const machineEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !startupSettings.includes(k)));

await section(1, () => {
  console.log(`1. validating examples/ (${examples.length} files), and applying a small config into a fresh root, vs node -e 0; median of 40 interleaved runs`);
  const measure = (env) => {
    const [node, cli, apply] = compare([['-e', '0'], validate(...examples), applySmall], 40, env);
    console.log(`   node -e 0            ${ms(node.median)} (min ${ms(node.min)})`);
    console.log(`   validating           ${ms(cli.median)} (min ${ms(cli.min)})   ratio ${(cli.median / node.median).toFixed(2)}x`);
    console.log(`   applying             ${ms(apply.median)} (min ${ms(apply.min)})   ratio ${(apply.median / node.median).toFixed(2)}x`);
    return { node, cli };
  };
  if (startupSettings.length > 0) {
    console.log(`   with this shell's ${startupSettings.join(' and ')}:`);
    bare = measure(process.env).node;
    console.log(`   as on a machine, without ${startupSettings.join(' or ')}:`);
  }
  const { node, cli } = measure(machineEnv);
  bare ??= node;
  target(1, 'validating at most 1.15x the start-up of node -e 0 (without NODE_EXTRA_CA_CERTS or NODE_OPTIONS)', cli.median / node.median <= 1.15);
});

// 2. A large config, 1x, 2x, 4x.
await section(2, () => {
  bare ??= compare([['-e', '0']], 10)[0];
  console.log('2. generated config: 200 users, 5000 write_files of 10 lines, 500 units per 1x; median of 5 runs');
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
  const work1x = large[0].median - bare.median;
  const work4x = large[2].median - bare.median;
  target(2, `1x under 0.5 s (the reference validator takes over 3 minutes on 1x)`, large[0].median < 500);
  target(2, `linear: 4x at most 4.4 times the 1x work after start-up (${(work4x / work1x).toFixed(2)})`, work4x / work1x <= 4.4);
  // Converting the 1x file: validating it, then mapping and writing it out. A conversion is run once
  // per config, by hand or in CI, so it may cost as much again as validating, not more: to Ignition
  // (JSON) and to Butane (YAML, written by src/cloudconfig/yaml-writer.ts) alike.
  const [check, ignition, butane] = compare(
    [['--validate'], ['--convert-to', 'ignition'], ['--convert-to', 'butane']].map((action) => [bin, ...action, '--from-file', sizes[0].file]),
    5,
  );
  console.log(`   converting the 1x file, against validating it (${ms(check.median)}); median of 5 interleaved runs`);
  for (const [label, t] of [['to Ignition', ignition], ['to Butane', butane]]) {
    console.log(`   ${label.padEnd(12)} ${(t.median / 1000).toFixed(3)} s   ratio ${(t.median / check.median).toFixed(2)}x`);
  }
  target(2, `converting 1x to Ignition at most 2x validating it (${(ignition.median / check.median).toFixed(2)})`, ignition.median <= 2 * check.median);
  target(2, `converting 1x to Butane at most 2x validating it (${(butane.median / check.median).toFixed(2)})`, butane.median <= 2 * check.median);
});

// 3. Many files in one invocation.
await section(3, () => {
  const many = [];
  for (let i = 0; i < 100; i++) {
    const src = readFileSync(examples[i % examples.length], 'utf8').replace(/^hostname: .*$/m, `hostname: node-${i}`);
    const file = join(work, `many-${i}.yaml`);
    writeFileSync(file, src);
    many.push(file);
  }
  const [one, hundred] = compare([validate(many[0]), validate(...many)], 20);
  console.log('3. 100 files in one invocation vs one file, median of 20 interleaved runs');
  console.log(`   1 file               ${ms(one.median)}`);
  console.log(`   100 files            ${ms(hundred.median)}`);
  console.log(`   ratio                ${(hundred.median / one.median).toFixed(2)}x`);
  target(3, 'well under 100x: at most 10x the time of one file', hundred.median / one.median <= 10);
});

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

await section(4, () => {
console.log('4. applying into a temporary root, offline (no systemd), median of 3 runs each');
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
  // Against the floor: a script that writes the same 500 files to temporary names, renames them
  // and runs one `sync -f`. Each side a whole process in a fresh root, interleaved.
  const list = join(work, 'floor-files.json');
  writeFileSync(list, JSON.stringify(benchFiles(500)));
  const config = join(work, 'floor.yaml');
  writeFileSync(config, generateApplyConfig({ files: 500, users: 0, units: 0 }));
  const wall = (args) => {
    const started = performance.now();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
    return performance.now() - started;
  };
  const ours = [];
  const floor = [];
  for (let i = 0; i < 9; i++) {
    ours.push(wall([bin, '--from-file', config, '--root', freshRoot(`floor-ours-${i}`)]));
    floor.push(wall([join(root, 'bench/write-floor.cjs'), freshRoot(`floor-${i}`), list]));
  }
  const median = (t) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)];
  const ratio = median(ours) / median(floor);
  console.log('   500 files against the floor (write to temporary names, rename, one sync -f; node script), median of 9 interleaved');
  console.log(`   floor      ${ms(median(floor))}`);
  console.log(`   ours       ${ms(median(ours))}   (with start-up and validation)`);
  console.log(`   ratio      ${ratio.toFixed(2)}x`);
  target(4, 'applying 500 files at most 3x the floor', ratio <= 3);
}
});

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
  console.log('5. first boot from a stand-in EC2 metadata service (IMDSv2, loopback), offline apply into a temp root; median of 7; no target, figures only');
  console.log(`   start to applied     ${ms(wall)}`);
  for (const [k, t] of parts) console.log(`   ${k.padEnd(20)} ${ms(t)} (${((t / wall) * 100).toFixed(0)}%)`);
  console.log(`   start-up and exit    ${ms(rest)} (${((rest / wall) * 100).toFixed(0)}%)`);
}

await section(5, async () => {
  if (process.getuid?.() === 0) await fromEc2();
  else console.log('5. skipped: applying needs root');
});

/**
 * Runs a benchmark bundled into its own process, its output passed on; the targets it prints
 * ("target: TEXT: met" or "MISSED") go into the summary too.
 */
function benchProcess(n, file) {
  const r = spawnSync(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  process.stdout.write(r.stdout.replace(/^\n/, ''));
  for (const m of r.stdout.matchAll(/target: (.+): (met|MISSED)$/gm)) targets.push({ n, text: m[1], met: m[2] === 'met' });
  return r.status;
}

// 6. Reboot coordination against a real etcd (bundled here; etcd3 stays in node_modules).
await section(6, async () => {
if (spawnSync('etcd', ['--version']).status === 0) {
  const { buildSync } = await import('esbuild');
  const locks = join(root, 'dist', 'bench-locks.cjs');
  buildSync({ entryPoints: [join(root, 'bench/locks.ts')], outfile: locks, bundle: true, platform: 'node', format: 'cjs', external: ['etcd3', 'dbus-next'], logLevel: 'warning' });
  if (benchProcess(6, locks) !== 0) throw new Error('the reboot-coordination benchmark failed');
} else console.log('6. skipped: needs etcd (Debian etcd-server)');
});

// 7. Applying an update payload against the floor (bundled as 6 is). The disk image is a sparse
// file with a GPT written by images/make.ts itself; the USR image is made by mkfs.ext4 -d.
await section(7, async () => {
if (['bzip2', 'mkfs.ext4', 'openssl'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0)) {
  const { buildSync } = await import('esbuild');
  const payload = join(root, 'dist', 'bench-payload.cjs');
  buildSync({ entryPoints: [join(root, 'bench/payload.ts')], outfile: payload, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  if (benchProcess(7, payload) !== 0) throw new Error('the payload-apply benchmark failed');
} else console.log('7. skipped: needs bzip2, mkfs.ext4 and openssl');
});

// 8. The update journey of a fleet (bundled as 6 is; etcd3 and dbus-next stay in node_modules).
// It runs the built programs (bin/ and dist/), and needs etcd, dbus-daemon and the image tools.
const journeyTools = ['etcd', 'dbus-daemon', 'bzip2', 'mkfs.ext4', 'debugfs'];
const missing = journeyTools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
await section(8, async () => {
if (missing.length === 0) {
  const { buildSync } = await import('esbuild');
  const journey = join(root, 'dist', 'bench-journey.cjs');
  buildSync({ entryPoints: [join(root, 'bench/journey.ts')], outfile: journey, bundle: true, platform: 'node', format: 'cjs', external: ['etcd3', 'dbus-next'], logLevel: 'warning' });
  if (benchProcess(8, journey) !== 0) throw new Error('the update-journey benchmark failed');
} else console.log(`8. skipped: needs ${missing.join(', ')}`);
});

// 9. The update server under 100 clients from 10,000 machines (bundled as 6 is; autocannon stays in node_modules).
await section(9, async () => {
  const { buildSync } = await import('esbuild');
  const server = join(root, 'dist', 'bench-update-server.cjs');
  buildSync({ entryPoints: [join(root, 'bench/update-server.ts')], outfile: server, bundle: true, platform: 'node', format: 'cjs', external: ['autocannon', 'etcd3'], logLevel: 'warning' });
  if (benchProcess(9, server) !== 0) throw new Error('the update-server benchmark failed');
});

// 10. The machine image: built cold (mmdebstrap into an empty, temporary cache) and from that cache,
// then booted in QEMU (bundled as 6 is). It needs root, QEMU, mmdebstrap and the image tools, and
// says so when they are missing.
await section(10, async () => {
  const { buildSync } = await import('esbuild');
  const machine = join(root, 'dist', 'bench-machine.cjs');
  buildSync({ entryPoints: [join(root, 'bench/machine.ts')], outfile: machine, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  if (benchProcess(10, machine) !== 0) throw new Error('the machine benchmark failed');
});

// 11. Two real machines updated under the lock (bundled as 6 is; etcd3 stays in node_modules). It
// builds the machine image (or takes BOOTSMITH_MACHINE_IMAGE) and boots it in QEMU: root only.
const machineTools = ['qemu-system-x86_64', 'mmdebstrap', 'genisoimage', 'debugfs', 'mkfs.ext4', 'mkfs.vfat', 'etcd', 'nc'];
const machineMissing = machineTools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
await section(11, async () => {
if (process.getuid?.() !== 0) console.log('11. skipped: booting the machine image needs root');
else if (machineMissing.length > 0) console.log(`11. skipped: needs ${machineMissing.join(', ')}`);
else {
  const { buildSync } = await import('esbuild');
  const machines = join(root, 'dist', 'bench-machines.cjs');
  buildSync({ entryPoints: [join(root, 'bench/machines.ts')], outfile: machines, bundle: true, platform: 'node', format: 'cjs', external: ['etcd3'], logLevel: 'warning' });
  if (benchProcess(11, machines) !== 0) throw new Error('the machine update-journey benchmark failed');
}
});

rmSync(work, { recursive: true, force: true });
writeFileSync(durationsFile, JSON.stringify({ ...last, ...took }));
const total = Object.values(took).reduce((a, b) => a + b, 0);
console.log(`\nsummary: sections ${Object.keys(took).join(', ')} in ${duration(total)}; targets:`);
for (const t of targets) console.log(`   ${t.met ? 'met   ' : 'MISSED'}  ${t.n}. ${t.text}`);
if (targets.length === 0) console.log('   (none in these sections)');
