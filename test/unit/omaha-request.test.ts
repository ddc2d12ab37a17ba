/**
 * The update server's reader of Omaha requests: what update_engine sends is read whole (the same
 * apps, attributes and children a general XML parser finds), anything outside the subset is
 * malformed, and hostile bodies cost time linear in their size.
 */
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import { buildRequest, coreosAppId } from '../../src/update/omaha';
import type { Identity, RequestBody } from '../../src/update/omaha';
import { readOmahaRequest } from '../../src/update/omaha-request';

const id: Identity = { appId: coreosAppId, version: '1000.0.0', track: 'stable', board: 'amd64-usr', machineId: 'm-1', bootId: '{b}', alephVersion: '1000.0.0', arch: 'x86_64' };
const general = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['app', 'event'].includes(n), parseAttributeValue: false, parseTagValue: false });

test('what update_engine sends reads as a general XML parser reads it', () => {
  const bodies: RequestBody[] = [
    { kind: 'check', previousVersion: undefined, rolledBack: false },
    { kind: 'check', previousVersion: '999.0.0', rolledBack: true },
    { kind: 'event', type: 3, result: 0, errorCode: 12 },
    { kind: 'ping' },
  ];
  for (const body of bodies) {
    for (const interactive of [false, true]) {
      const xml = buildRequest(id, body, interactive);
      const apps = readOmahaRequest(xml)!;
      const expected = (general.parse(xml, true) as { request: { app: Record<string, unknown>[] } }).request.app;
      expect(apps).toHaveLength(expected.length);
      const { event, ping, updatecheck, ...attributes } = expected[0]!;
      expect({ ...apps[0]!.attributes }).toEqual(attributes);
      expect(apps[0]!.events).toEqual(((event as Record<string, string>[] | undefined) ?? []).map((e) => ({ ...e })));
      expect(apps[0]!.ping).toBe(ping !== undefined);
      expect(apps[0]!.updateCheck).toBe(updatecheck !== undefined);
    }
  }
});

test('entities, single quotes, comments and self-closing tags', () => {
  const apps = readOmahaRequest("<?xml version='1.0'?>\n<!-- hi --><request><app appid='a&amp;b' track=\"&#x41;&#66;\"><ping/><event eventtype=\"3\"/></app><app/></request>\n")!;
  expect(apps.map((a) => ({ ...a, attributes: { ...a.attributes } }))).toEqual([
    { attributes: { appid: 'a&b', track: 'AB' }, events: [{ eventtype: '3' }], ping: true, updateCheck: false },
    { attributes: {}, events: [], ping: false, updateCheck: false },
  ]);
  // Only children of an app count, only apps directly under the request.
  expect(readOmahaRequest('<request><os><app><ping/></app></os><app><x><updatecheck/></x></app></request>')).toEqual([{ attributes: {}, events: [], ping: false, updateCheck: false }]);
});

test('anything outside the subset is malformed', () => {
  for (const body of [
    '',
    'hello',
    '<request>',
    '<request></app>',
    '<request><app></request></app>',
    '<response></response>',
    '<request></request><request></request>',
    '<request></request> trailing',
    '<!DOCTYPE request [<!ENTITY a "b">]><request></request>',
    '<request><![CDATA[x]]></request>',
    '<request><app appid="&a;"></app></request>',
    '<request><app appid="a & b"></app></request>',
    '<request><app appid="a" appid="b"></app></request>',
    '<request><app appid="unterminated></app></request>',
    '<request><app appid=bare></app></request>',
    `<request>${'<a>'.repeat(40)}${'</a>'.repeat(40)}</request>`,
    '<request></request><?pi after?>',
  ]) {
    expect([body, readOmahaRequest(body)]).toEqual([body, undefined]);
  }
});

test('never throws, and reads a hostile 64 KiB body in linear time', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => {
    const r = readOmahaRequest(`<request><app ${s}></app></request>`);
    expect(r === undefined || Array.isArray(r)).toBe(true);
  }));
  const hostile = [
    `<request><app a="${'x'.repeat(65_000)}`,
    `<request>${'<app b="1"'.repeat(6_000)}`,
    `<request><app${' a="1"'.repeat(10_000)}></app></request>`,
    `<request>${'<!--'.repeat(16_000)}`,
    `<request>${'<a/>'.repeat(16_000)}</request>`,
  ];
  for (const body of hostile) {
    const started = process.hrtime.bigint();
    readOmahaRequest(body);
    // Generous: a quadratic reader takes seconds on these; a linear one, milliseconds (the bound leaves room for a loaded machine).
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(10_000);
  }
});
