/**
 * sharedReadiness: however often /readyz is probed, the peer is asked once at a time, and at most
 * once per `keepMs`; a check that throws is not ready, for its error's reason. On jest's clock.
 */
import { sharedReadiness } from '../../src/system/metrics-http';

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test('probes at once share one check; its answer is kept keepMs, then asked anew', async () => {
  let checks = 0;
  let answer: string | undefined = undefined;
  let release = () => undefined as void;
  const ready = sharedReadiness(() => {
    checks++;
    return new Promise<string | undefined>((resolve) => (release = () => resolve(answer)));
  }, 1000);
  const probes = [ready(), ready(), ready()];
  expect(checks).toBe(1);
  release();
  expect(await Promise.all(probes)).toEqual([undefined, undefined, undefined]);
  answer = 'etcd is away';
  await jest.advanceTimersByTimeAsync(999);
  expect(await ready()).toBeUndefined(); // the kept answer
  expect(checks).toBe(1);
  await jest.advanceTimersByTimeAsync(1);
  const next = ready();
  expect(checks).toBe(2);
  release();
  expect(await next).toBe('etcd is away');
});

test('a check that throws is not ready, with its reason', async () => {
  const ready = sharedReadiness(async () => {
    throw new Error('etcd did not answer within 2000 ms');
  });
  expect(await ready()).toBe('etcd did not answer within 2000 ms');
});
