/**
 * The Omaha v3 protocol as CoreOS/Flatcar update_engine speaks it: the request it POSTs (update
 * check with ping and the previous boot's event, ping only, or a single event) and the rules by
 * which it reads the response (shared/reference/update-engine.md 1.2 and 1.3).
 */
import { XMLParser } from 'fast-xml-parser';

export const coreosAppId = '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}';
export const updaterVersion = 'bootsmith-update_engine-0.1.0';

/** Event types and results update_engine sends. */
export const eventType = { updateComplete: 3, downloadStarted: 13, downloadFinished: 14 } as const;
export const eventResult = { error: 0, success: 1, successReboot: 2, deferred: 9 } as const;

/** The action codes of update_engine 0.4.x that bootsmith reports. */
export const errorCode = {
  error: 1,
  omahaRequestError: 2,
  omahaResponseHandlerError: 3,
  postinstallRunnerError: 5,
  installDeviceOpenError: 7,
  downloadTransferError: 9,
  payloadHashMismatch: 10,
  payloadSizeMismatch: 11,
  payloadVerificationError: 12,
  newPartitionInfoError: 13,
  downloadWriteError: 14,
  newRootfsVerificationError: 15,
  payloadPubkeyVerificationError: 18,
  invalidMetadataMagic: 21,
  signatureMissingInManifest: 22,
  manifestParseError: 23,
  operationHashMismatch: 29,
  emptyResponse: 30,
  xmlParseError: 31,
  invalidMetadataSize: 32,
  omahaResponseInvalid: 34,
  rollback: 44,
  /** HTTP failures of a check: 2000 + the status. */
  httpBase: 2000,
} as const;

/** What the machine tells the server about itself. */
export interface Identity {
  appId: string;
  version: string;
  track: string;
  board: string;
  machineId: string;
  bootId: string;
  oem?: string;
  oemVersion?: string;
  alephVersion: string;
  machineAlias?: string;
  /** `uname -m`, for the os element's sp. */
  arch: string;
}

export type RequestBody =
  /** An update check: ping, updatecheck, and the event for the previous boot. */
  | { kind: 'check'; previousVersion: string | undefined; rolledBack: boolean }
  | { kind: 'ping' }
  | { kind: 'event'; type: number; result: number; errorCode?: number; previousVersion?: string };

/** Text for an XML attribute value. */
export const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const attrs = (pairs: [string, string | number | undefined][]) =>
  pairs
    .filter((p): p is [string, string | number] => p[1] !== undefined)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');

/** The request XML, attributes in the order update_engine writes them. */
export function buildRequest(id: Identity, body: RequestBody, interactive: boolean): string {
  let inner: string;
  if (body.kind === 'check') {
    const event = body.rolledBack
      ? attrs([['eventtype', eventType.updateComplete], ['eventresult', eventResult.error], ['errorcode', errorCode.rollback], ['previousversion', body.previousVersion]])
      : attrs([['eventtype', eventType.updateComplete], ['eventresult', eventResult.successReboot], ['previousversion', body.previousVersion ?? '0.0.0.0']]);
    inner = `    <ping active="1"></ping>\n    <updatecheck></updatecheck>\n    <event${event}></event>\n`;
  } else if (body.kind === 'ping') {
    inner = '    <ping active="1"></ping>\n';
  } else {
    const withCode = body.result !== eventResult.success && body.result !== eventResult.successReboot;
    inner = `    <event${attrs([['eventtype', body.type], ['eventresult', body.result], ['errorcode', withCode ? (body.errorCode ?? errorCode.error) : undefined], ['previousversion', body.previousVersion]])}></event>\n`;
  }
  const request = attrs([
    ['protocol', '3.0'],
    ['version', updaterVersion],
    ['updaterversion', updaterVersion],
    ['installsource', interactive ? 'ondemandupdate' : 'scheduler'],
    ['ismachine', '1'],
  ]);
  const os = attrs([['version', 'Chateau'], ['platform', 'CoreOS'], ['sp', `${id.version}_${id.arch}`]]);
  const app = attrs([
    ['appid', id.appId],
    ['version', id.version],
    ['track', id.track],
    ['bootid', id.bootId],
    ['oem', id.oem ?? ''],
    ['oemversion', id.oemVersion ?? ''],
    ['alephversion', id.alephVersion],
    ['machineid', id.machineId],
    ['lang', 'en-US'],
    ['board', id.board],
    ['hardware_class', ''],
    ['delta_okay', 'false'],
    ['machinealias', id.machineAlias],
  ]);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<request${request}>\n  <os${os}></os>\n  <app${app}>\n${inner}  </app>\n</request>\n`;
}

export type Answer =
  | { kind: 'noupdate'; pollInterval?: number }
  | {
      kind: 'update';
      version: string;
      /** The payload's URLs: each codebase with the first package's name. */
      urls: string[];
      packageName: string;
      size: number;
      /** The payload's SHA-256 from the postinstall action. */
      sha256: Buffer;
      pollInterval?: number;
      disablePayloadBackoff: boolean;
    };

/**
 * An answer that is not what update_engine accepts, with the action code it reports. `refusal` is
 * the app or updatecheck status when the server answered but refused (error-updatesDisabled, ...):
 * no update is offered, and nothing is wrong with the machine or an update.
 */
export class OmahaError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly refusal?: string,
  ) {
    super(message);
    this.name = 'OmahaError';
  }
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  isArray: (name) => ['app', 'url', 'package', 'action'].includes(name),
  processEntities: true,
  parseAttributeValue: false,
  parseTagValue: false,
});

type Node = Record<string, unknown>;
const child = (n: unknown, name: string): Node | undefined => {
  const v = (n as Node | undefined)?.[name];
  if (Array.isArray(v)) return v[0] as Node | undefined;
  return v !== null && typeof v === 'object' ? (v as Node) : v === '' ? {} : undefined;
};
const list = (n: unknown, name: string): Node[] => {
  const v = (n as Node | undefined)?.[name];
  return Array.isArray(v) ? (v as Node[]) : [];
};
const str = (n: Node | undefined, name: string): string | undefined => {
  const v = n?.[name];
  return typeof v === 'string' ? v : undefined;
};

/** A SHA-256 given as base64 (go-omaha, Nebraska) or hex (flatcar-update): the 32 bytes. */
export function decodeDigest(value: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  const b = Buffer.from(value, 'base64');
  return b.length === 32 && /^[A-Za-z0-9+/]+=*$/.test(value) ? b : undefined;
}

/** Reads a response as update_engine does; element order does not matter, unknown attributes are ignored. */
export function parseResponse(xml: string, appId = coreosAppId): Answer {
  if (xml.trim() === '') throw new OmahaError(errorCode.emptyResponse, 'the update server sent an empty response');
  let doc: Node;
  try {
    doc = parser.parse(xml, true) as Node;
  } catch (err) {
    throw new OmahaError(errorCode.xmlParseError, `the update server's response is not XML: ${(err as Error).message}`);
  }
  const invalid = (why: string, refusal?: string) => new OmahaError(errorCode.omahaResponseInvalid, `invalid update response: ${why}`, refusal);
  const response = child(doc, 'response');
  if (!response) throw invalid('no <response>');
  const apps = list(response, 'app');
  const app = apps.find((a) => str(a, 'appid')?.toLowerCase() === appId.toLowerCase()) ?? apps[0];
  if (!app) throw invalid('no <app>');
  const appStatus = str(app, 'status');
  if (appStatus && appStatus !== 'ok') throw invalid(`the app's status is ${appStatus}`, appStatus);
  const check = child(app, 'updatecheck');
  const status = str(check, 'status');
  if (!check || !status) throw invalid('no <updatecheck status=...>');
  const pollText = str(check, 'PollInterval');
  const pollInterval = pollText && /^\d+$/.test(pollText) ? Number(pollText) : undefined;
  const poll = pollInterval !== undefined ? { pollInterval } : {};
  if (status === 'noupdate') return { kind: 'noupdate', ...poll };
  if (status !== 'ok') throw invalid(`updatecheck status ${status}`, status);
  const manifest = child(check, 'manifest');
  if (!manifest) throw invalid('no <manifest>');
  const codebases = list(child(check, 'urls'), 'url')
    .map((u) => str(u, 'codebase') ?? '')
    .filter((c) => c !== '');
  if (codebases.length === 0) throw invalid('no <url codebase=...>');
  const pkg = list(child(manifest, 'packages'), 'package')[0];
  const packageName = str(pkg, 'name');
  if (!pkg || !packageName) throw invalid('no <package name=...>');
  const sizeText = str(pkg, 'size') ?? '';
  const size = /^\d+$/.test(sizeText) ? Number(sizeText) : 0;
  if (size <= 0) throw invalid(`package size ${JSON.stringify(sizeText)} is not above 0`);
  const postinstall = list(child(manifest, 'actions'), 'action').find((a) => str(a, 'event') === 'postinstall');
  if (!postinstall) throw invalid('no postinstall <action>');
  const shaText = str(postinstall, 'sha256');
  if (!shaText) throw invalid('the postinstall action has no sha256');
  const sha256 = decodeDigest(shaText);
  if (!sha256) throw invalid(`sha256 ${JSON.stringify(shaText)} is neither base64 nor hex of 32 bytes`);
  return {
    kind: 'update',
    version: str(manifest, 'version') ?? '',
    urls: codebases.map((c) => `${c.endsWith('/') ? c : `${c}/`}${packageName}`),
    packageName,
    size,
    sha256,
    ...poll,
    disablePayloadBackoff: str(postinstall, 'DisablePayloadBackoff') === 'true',
  };
}
