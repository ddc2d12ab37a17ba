/**
 * The attempter's pure decisions: what the boot after an update attempt is (only a boot of the old
 * slot after a finalize is a rollback), whether an unbooted update is still staged, and what
 * Finalize's confirmation check accepts (only the same version; no answer at all falls back).
 */
import { bootOutcome, confirmation, stillStaged } from '../../src/update/attempter';
import type { Finalized, Staged } from '../../src/update/engine';
import { attr } from '../../src/update/gpt';
import type { GptEntry } from '../../src/update/gpt';
import { errorCode, OmahaError, parseResponse } from '../../src/update/omaha';
import type { Slots } from '../../src/update/slots';
import { usrTypeGuid } from '../../src/update/slots';

const guidA = '7130C94A-213A-4E5A-8E26-6CCE9662F132';
const guidB = 'E03DD35C-7C2D-4A47-B3FE-27F15780A57C';
type Flags = [priority: number, tries: number, successful: boolean];
const entry = (number: number, name: string, uniqueGuid: string, [priority, tries, successful]: Flags): GptEntry => ({
  number,
  name,
  uniqueGuid,
  typeGuid: usrTypeGuid,
  firstLba: 4096n,
  lastLba: 8191n,
  attributes: attr.with(0n, { priority, tries, successful }),
});
/** Running USR-A; USR-B is the passive slot. */
const slots = (a: Flags, b: Flags): Slots => ({ active: entry(3, 'USR-A', guidA, a), passive: entry(4, 'USR-B', guidB, b) });
const finalizedB: Finalized = { partition: 4, uniqueGuid: guidB, label: 'USR-B', imageSha256: 'ab', finalizedAt: '' };
const finalizedA: Finalized = { ...finalizedB, partition: 3, uniqueGuid: guidA, label: 'USR-A' };
const stagedB: Staged = { disk: '/dev/vda', partition: 4, uniqueGuid: guidB, label: 'USR-B', imageSize: 1, imageSha256: 'ab', payloadSha256: 'cd', stagedAt: '' };

const good: Flags = [1, 0, true];
const unbootable: Flags = [0, 0, false];
const switched: Flags = [2, 1, false]; // finalized, its try not used yet
const spent: Flags = [2, 0, false]; // finalized, tried, never marked good: gptprio skips it

describe('bootOutcome: only a boot of the old slot after a finalize is a rollback', () => {
  test.each<[string, string | undefined, string, Finalized | undefined, Slots | undefined, string]>([
    ['no update attempt', undefined, '1000.0.0', undefined, slots(good, unbootable), 'none'],
    ['the new version runs', '1000.0.0', '1001.0.0', finalizedB, slots([2, 0, true], [1, 0, true]), 'updated'],
    ['the new version runs (finalized by another program: no record)', '1000.0.0', '1001.0.0', undefined, undefined, 'updated'],
    ['finalized, the new slot used its try and failed, the old one runs', '1000.0.0', '1000.0.0', finalizedB, slots(good, spent), 'rolled-back'],
    ['a reboot before Finalize: nothing switched, nothing recorded', '1000.0.0', '1000.0.0', undefined, slots(good, unbootable), 'not-booted'],
    ['Finalize cut short: recorded, the flags never switched', '1000.0.0', '1000.0.0', finalizedB, slots(good, unbootable), 'not-booted'],
    ['finalized, the reboot still to come (a daemon restart)', '1000.0.0', '1000.0.0', finalizedB, slots(good, switched), 'not-booted'],
    ['flags look spent but no finalize was recorded', '1000.0.0', '1000.0.0', undefined, slots(good, spent), 'not-booted'],
    ['a finalize record for another slot', '1000.0.0', '1000.0.0', finalizedA, slots(good, spent), 'not-booted'],
    ['the disk could not be read', '1000.0.0', '1000.0.0', finalizedB, undefined, 'not-booted'],
  ])('%s', (_what, previous, running, finalized, s, expected) => {
    expect(bootOutcome(previous, running, finalized, s)).toBe(expected);
  });
});

describe('stillStaged: an unbooted update is kept only when the slot still holds it', () => {
  test.each<[string, Staged | undefined, Finalized | undefined, Slots, boolean]>([
    ['staged, the slot never made bootable since', stagedB, undefined, slots(good, unbootable), true],
    ['staged, then made bootable by someone', stagedB, undefined, slots(good, [1, 0, true]), false],
    ['staged, then given a try by someone', stagedB, undefined, slots(good, [0, 1, false]), false],
    ['the staged record names another partition', { ...stagedB, uniqueGuid: guidA }, undefined, slots(good, unbootable), false],
    ['no staged record (written again, or forgotten)', undefined, undefined, slots(good, unbootable), false],
    ['finalized, its try still ahead', undefined, finalizedB, slots(good, switched), true],
    ['finalized and its try spent: no longer an update to boot', undefined, finalizedB, slots(good, spent), false],
  ])('%s', (_what, staged, finalized, s, expected) => {
    expect(stillStaged(staged, finalized, s)).toBe(expected);
  });
});

const offer = (version: string) =>
  `<response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"></daystart><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="ok"><ping status="ok"></ping><updatecheck status="ok"><urls><url codebase="http://u/"></url></urls><manifest version="${version}"><packages><package name="update.gz" hash="x" size="10" required="true"></package></packages><actions><action event="postinstall" sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="></action></actions></manifest></updatecheck></app></response>`;
const app = (appStatus: string, checkStatus: string) => `<response protocol="3.0"><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="${appStatus}"><updatecheck status="${checkStatus}"></updatecheck></app></response>`;
/** What Finalize gets for a body: the parsed answer, or the error parsing throws. */
const replyTo = (xml: string) => {
  try {
    return { answer: parseResponse(xml) };
  } catch (err) {
    return { error: err as Error };
  }
};

describe("Finalize's confirmation: only the same version offered finalizes; only no answer at all falls back", () => {
  test.each<[string, { answer: ReturnType<typeof parseResponse> } | { error: Error }, 'confirmed' | 'unanswered' | 'refused']>([
    ['the same version offered', replyTo(offer('1001.0.0')), 'confirmed'],
    ['noupdate', replyTo(app('ok', 'noupdate')), 'refused'],
    ['another version', replyTo(offer('1001.5.0')), 'refused'],
    ['an older version', replyTo(offer('1000.9.0')), 'refused'],
    ['an update without a version', replyTo(offer('1001.0.0').replace(' version="1001.0.0"', '')), 'refused'],
    ["Nebraska's error-updatesDisabled", replyTo(app('error-updatesDisabled', 'error-internal')), 'refused'],
    ['another app status (error-maxUpdatesPerPeriodLimitReached)', replyTo(app('error-maxUpdatesPerPeriodLimitReached', 'error-internal')), 'refused'],
    ['app ok, updatecheck error-internal', replyTo(app('ok', 'error-internal')), 'refused'],
    ['app restricted, the version offered all the same', replyTo(offer('1001.0.0').replace('status="ok"><ping', 'status="restricted"><ping')), 'refused'],
    ['updatecheck error-osnotsupported', replyTo(app('ok', 'error-osnotsupported')), 'refused'],
    ['an empty response', replyTo(''), 'refused'],
    ['not XML', replyTo('<html><body>captive portal'), 'refused'],
    ['XML without a <response>', replyTo('<html/>'), 'refused'],
    ['an HTTP error status', { error: new OmahaError(errorCode.httpBase + 503, 'HTTP 503') }, 'refused'],
    ['HTTP 404', { error: new OmahaError(errorCode.httpBase + 404, 'HTTP 404') }, 'refused'],
    ['an error that is not an Omaha one', { error: new Error('something else') }, 'refused'],
    ['no answer at all (connection refused, timeout)', { error: new OmahaError(errorCode.omahaRequestError, 'connect ECONNREFUSED 127.0.0.1:9') }, 'unanswered'],
  ])('%s', (_what, reply, expected) => {
    expect(confirmation('1001.0.0', reply).kind).toBe(expected);
  });
});
