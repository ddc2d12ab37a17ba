/**
 * Any byte sequence gives a report within bounded time and memory: never a throw, a crash or a
 * hang. Mutated corpus files (property test) and hand-made hostile inputs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { validateUserData } from '../../src/cloudconfig/validate';
import { corpusDir } from '../helpers';

const corpus = corpusDir();
const seeds = readdirSync(corpus)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(join(corpus, f)));

function validates(bytes: Uint8Array): void {
  const report = validateUserData(bytes);
  for (const d of report.diagnostics) {
    expect(d.line).toBeGreaterThanOrEqual(1);
    expect(d.column).toBeGreaterThanOrEqual(1);
    expect(typeof d.code).toBe('string');
  }
}

/** A mutation of a corpus file: bytes flipped, inserted, deleted, lines duplicated or cut. */
const mutated = fc
  .tuple(
    fc.integer({ min: 0, max: seeds.length - 1 }),
    fc.array(
      fc.tuple(
        fc.constantFrom('flip', 'insert', 'delete', 'dupline', 'truncate', 'indent'),
        fc.nat(),
        fc.constantFrom(...Buffer.from(' \t\n:-[]{}&*!|>\'"%@`#,?0x\\').values(), 0x00, 0xff, 0xc3),
      ),
      { minLength: 1, maxLength: 8 },
    ),
  )
  .map(([i, edits]) => {
    let buf = Buffer.from(seeds[i]!);
    for (const [op, pos, byte] of edits) {
      const at = buf.length === 0 ? 0 : pos % buf.length;
      if (op === 'flip') buf[at] = byte;
      else if (op === 'insert') buf = Buffer.concat([buf.subarray(0, at), Buffer.from([byte]), buf.subarray(at)]);
      else if (op === 'delete') buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1)]);
      else if (op === 'truncate') buf = buf.subarray(0, at);
      else {
        const start = buf.lastIndexOf(10, at) + 1;
        const end = buf.indexOf(10, at);
        const line = buf.subarray(start, end === -1 ? buf.length : end + 1);
        const add = op === 'dupline' ? line : Buffer.concat([Buffer.from('  '), line]);
        buf = Buffer.concat([buf.subarray(0, start), add, buf.subarray(start)]);
      }
    }
    return buf;
  });

test('mutated corpus files always give a report', () => {
  fc.assert(fc.property(mutated, (bytes) => validates(bytes)), { numRuns: 1500 });
});

test('random bytes after the header always give a report', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (tail) => validates(Buffer.concat([Buffer.from('#cloud-config\n'), tail]))),
    { numRuns: 1000 },
  );
});

describe('hand-made hostile inputs', () => {
  const header = '#cloud-config\n';
  test.each([
    ['0-byte file', Buffer.alloc(0), []],
    ['binary', Buffer.from([0, 1, 2, 255, 254, 0x1f]), ['bad-header']],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`${header}hostname: `), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]), ['invalid-utf8']],
    ['deep flow nesting', Buffer.from(`${header}a: ${'['.repeat(200_000)}`), ['too-deep']],
    ['deep block nesting', Buffer.from(header + Array.from({ length: 1500 }, (_, i) => `${' '.repeat(i)}a:`).join('\n')), ['too-deep']],
    ['alias bomb', Buffer.from(header + billionLaughs()), ['alias-limit']],
    ['self-referencing alias', Buffer.from(`${header}a: &x [*x]\n`), ['yaml-syntax']],
    ['huge', Buffer.alloc(3 * 1024 * 1024, 'a'), ['too-large']],
    ['many aliases', Buffer.from(`${header}x: &a [1]\n${Array.from({ length: 20_000 }, (_, i) => `k${i}: *a`).join('\n')}`), ['unknown-key']],
    ['an unknown alias', Buffer.from(`${header}hostname: *nowhere\n`), ['yaml-syntax']],
    ['many duplicate keys on the slow path', Buffer.from(`${header}a: !!str b\n${'a: b\n'.repeat(50_000)}`), ['duplicate-key']],
    // Values written as lines or ids (issue 12): each an error at the value, in bounded time.
    ['a hostname that adds a line to /etc/hosts', Buffer.from(`${header}hostname: "web\\n10.0.0.1 bank.example.com"\nmanage_etc_hosts: localhost\n`), ['hostname-syntax']],
    ['a megabyte hostname', Buffer.from(`${header}hostname: ${'a'.repeat(1024 * 1024)}\n`), ['hostname-syntax']],
    ['owner -1', Buffer.from(`${header}write_files:\n  - path: /a\n    owner: "4294967295:4294967295"\n`), ['owner-id-range']],
    ['an owner id of 400 digits', Buffer.from(`${header}write_files:\n  - path: /a\n    owner: "${'9'.repeat(400)}"\n`), ['owner-id-range']],
    ['a drop-in that climbs out', Buffer.from(`${header}coreos:\n  units:\n    - name: a.service\n      drop_ins:\n        - name: ../../../../etc/cron.d/x.conf\n          content: "[Service]\\n"\n`), ['drop-in-name']],
  ])('%s', (_name, bytes, expectedCodes) => {
    const started = Date.now();
    const codes = validateUserData(bytes).diagnostics.map((d) => d.code);
    for (const code of expectedCodes) expect(codes).toContain(code);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

function billionLaughs(): string {
  const lines = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i < 10; i++) lines.push(`l${i}: &l${i} [${Array.from({ length: 10 }, () => `*l${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}
