/** Omaha requests as update_engine writes them, and responses read by its rules (Nebraska's shape included). */
import { buildRequest, coreosAppId, errorCode, parseResponse, OmahaError } from '../../src/update/omaha';
import type { Identity } from '../../src/update/omaha';

const id: Identity = {
  appId: coreosAppId,
  version: '1000.0.0',
  track: 'stable',
  board: 'amd64-usr',
  machineId: 'f4e1c8ab0c7d4a3c9e2b6d5a1f0e9c8b',
  bootId: '{3c4ba6a1-0d3e-4b5a-9a65-1f7e0e7a2b11}',
  oem: 'qemu',
  oemVersion: '0.0.1',
  alephVersion: '999.0.0',
  arch: 'x86_64',
};

/** The shape of a Nebraska answer (server="nebraska", SHA-1 package hash, base64 SHA-256 in the postinstall action). */
const nebraska = `<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="nebraska">
  <daystart elapsed_seconds="0"></daystart>
  <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="ok">
    <ping status="ok"></ping>
    <updatecheck status="ok">
      <urls>
        <url codebase="https://update.release.flatcar-linux.net/amd64-usr/1001.1.0"></url>
      </urls>
      <manifest version="1001.1.0">
        <packages>
          <package name="flatcar_production_update.gz" hash="2jmj7l5rSw0yVb/vlWAYkK/YBwk=" size="360141900" required="true"></package>
        </packages>
        <actions>
          <action event="postinstall" sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" DisablePayloadBackoff="true"></action>
        </actions>
      </manifest>
    </updatecheck>
  </app>
</response>`;

test('an update check carries ping, updatecheck and the previous boot as event 3/2', () => {
  expect(buildRequest(id, { kind: 'check', previousVersion: undefined, rolledBack: false }, false)).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="bootsmith-update_engine-0.1.0" updaterversion="bootsmith-update_engine-0.1.0" installsource="scheduler" ismachine="1">
  <os version="Chateau" platform="CoreOS" sp="1000.0.0_x86_64"></os>
  <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="1000.0.0" track="stable" bootid="{3c4ba6a1-0d3e-4b5a-9a65-1f7e0e7a2b11}" oem="qemu" oemversion="0.0.1" alephversion="999.0.0" machineid="f4e1c8ab0c7d4a3c9e2b6d5a1f0e9c8b" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false">
    <ping active="1"></ping>
    <updatecheck></updatecheck>
    <event eventtype="3" eventresult="2" previousversion="0.0.0.0"></event>
  </app>
</request>
`);
  expect(buildRequest(id, { kind: 'check', previousVersion: '999.0.0', rolledBack: true }, true)).toContain('<event eventtype="3" eventresult="0" errorcode="44" previousversion="999.0.0"></event>');
  expect(buildRequest(id, { kind: 'check', previousVersion: '999.0.0', rolledBack: true }, true)).toContain('installsource="ondemandupdate"');
});

test('events: errorcode only when the result is not a success; attributes escaped', () => {
  expect(buildRequest(id, { kind: 'event', type: 13, result: 1 }, false)).toContain('<event eventtype="13" eventresult="1"></event>');
  expect(buildRequest(id, { kind: 'event', type: 3, result: 0, errorCode: 12 }, false)).toContain('<event eventtype="3" eventresult="0" errorcode="12"></event>');
  expect(buildRequest({ ...id, track: 'a"<b>&' }, { kind: 'ping' }, false)).toContain('track="a&quot;&lt;b&gt;&amp;"');
  expect(buildRequest({ ...id, machineAlias: 'web-1' }, { kind: 'ping' }, false)).toMatch(/delta_okay="false" machinealias="web-1">\n    <ping active="1"><\/ping>\n  <\/app>/);
});

test("Nebraska's answer", () => {
  expect(parseResponse(nebraska)).toEqual({
    kind: 'update',
    version: '1001.1.0',
    urls: ['https://update.release.flatcar-linux.net/amd64-usr/1001.1.0/flatcar_production_update.gz'],
    packageName: 'flatcar_production_update.gz',
    size: 360141900,
    sha256: Buffer.from('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'),
    disablePayloadBackoff: true,
  });
});

test('noupdate, PollInterval, hex sha256 (flatcar-update), several URLs', () => {
  expect(parseResponse('<response protocol="3.0"><app appid="x" status="ok"><updatecheck status="noupdate" PollInterval="600"/></app></response>')).toEqual({ kind: 'noupdate', pollInterval: 600 });
  const hex = nebraska
    .replace('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    .replace('<urls>', '<urls><url codebase="http://mirror.example/"></url>');
  const a = parseResponse(hex);
  expect(a.kind === 'update' && a.urls).toEqual(['http://mirror.example/flatcar_production_update.gz', 'https://update.release.flatcar-linux.net/amd64-usr/1001.1.0/flatcar_production_update.gz']);
});

test.each([
  ['', errorCode.emptyResponse, 'the update server sent an empty response'],
  ['<response><app status="ok"><updatecheck status="ok"></response>', errorCode.xmlParseError, /not XML/],
  ['<html/>', errorCode.omahaResponseInvalid, 'invalid update response: no <response>'],
  ['<response><app appid="x" status="error-unknownApplication"><updatecheck status="error-internal"/></app></response>', errorCode.omahaResponseInvalid, "invalid update response: the app's status is error-unknownApplication"],
  ['<response><app status="ok"><updatecheck status="error-hash"/></app></response>', errorCode.omahaResponseInvalid, 'invalid update response: updatecheck status error-hash'],
  [nebraska.replace(/<urls>[\s\S]*<\/urls>/, ''), errorCode.omahaResponseInvalid, 'invalid update response: no <url codebase=...>'],
  [nebraska.replace('size="360141900"', 'size="0"'), errorCode.omahaResponseInvalid, 'invalid update response: package size "0" is not above 0'],
  [nebraska.replace('event="postinstall"', 'event="install"'), errorCode.omahaResponseInvalid, 'invalid update response: no postinstall <action>'],
  [nebraska.replace('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'abc'), errorCode.omahaResponseInvalid, 'invalid update response: sha256 "abc" is neither base64 nor hex of 32 bytes'],
])('rejected: %#', (xml, code, message) => {
  let err: unknown;
  try {
    parseResponse(xml);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(OmahaError);
  expect((err as OmahaError).code).toBe(code);
  expect((err as Error).message).toMatch(message);
});

/** The error parseResponse throws for `xml`. */
const rejection = (xml: string): OmahaError => {
  try {
    parseResponse(xml);
  } catch (e) {
    return e as OmahaError;
  }
  throw new Error('accepted');
};

test.each([
  ['<response><app appid="x" status="error-updatesDisabled"><updatecheck status="error-internal"/></app></response>', 'error-updatesDisabled'],
  ['<response><app appid="x" status="restricted"><updatecheck status="ok"/></app></response>', 'restricted'],
  ['<response><app status="ok"><updatecheck status="error-internal"/></app></response>', 'error-internal'],
  ['<response><app status="ok"><updatecheck status="error-osnotsupported"/></app></response>', 'error-osnotsupported'],
])('a refusal (a status other than ok or noupdate) is told apart from a broken answer: %#', (xml, status) => {
  expect(rejection(xml)).toMatchObject({ code: errorCode.omahaResponseInvalid, refusal: status });
});

test.each(['', '<html/>', '<response><app status="ok"><updatecheck status="ok"></response>', nebraska.replace(/<urls>[\s\S]*<\/urls>/, '')])('a broken answer is no refusal: %#', (xml) => {
  expect(rejection(xml).refusal).toBeUndefined();
});
