/** The metric sets fed by hand, read back from their registry: names, labels and values. */
import { EngineMetrics, LockMetrics, newRegistry } from '../../src/report/metrics';
import { sample } from '../support/metrics';
import { statuses } from '../../src/update/attempter';

test('update_engine: checks by result, the status, the progress, the bytes of the payload and errors by code', async () => {
  const registry = newRegistry('update_engine');
  const m = new EngineMetrics(registry, statuses);
  const size = 1_000_003;
  const walk = (ops: Array<[string, number]>) => ops.forEach(([currentOperation, progress]) => m.update({ currentOperation, progress, newSize: size }));
  walk([['UPDATE_STATUS_CHECKING_FOR_UPDATE', 0], ['UPDATE_STATUS_IDLE', 0]]);
  walk([['UPDATE_STATUS_CHECKING_FOR_UPDATE', 0], ['UPDATE_STATUS_UPDATE_AVAILABLE', 0], ['UPDATE_STATUS_DOWNLOADING', 0], ['UPDATE_STATUS_DOWNLOADING', 0.333], ['UPDATE_STATUS_DOWNLOADING', 0.667]]);
  let text = await registry.metrics();
  expect(sample(text, 'bootsmith_update_checks_total', { result: 'noupdate' })).toBe(1);
  expect(sample(text, 'bootsmith_update_checks_total', { result: 'update' })).toBe(1);
  expect(sample(text, 'bootsmith_update_status', { status: 'UPDATE_STATUS_DOWNLOADING' })).toBe(1);
  expect(sample(text, 'bootsmith_update_status', { status: 'UPDATE_STATUS_IDLE' })).toBe(0);
  expect(sample(text, 'bootsmith_update_progress_ratio')).toBe(0.667);
  walk([['UPDATE_STATUS_VERIFYING', 1], ['UPDATE_STATUS_FINALIZING', 1], ['UPDATE_STATUS_UPDATED_NEED_REBOOT', 1]]);
  m.failed(10);
  text = await registry.metrics();
  expect(sample(text, 'bootsmith_update_bytes_downloaded_total')).toBe(size); // whole, however it was rounded on the way
  expect(sample(text, 'bootsmith_update_errors_total', { code: '10' })).toBe(1);
  expect(sample(text, 'bootsmith_build_info', { program: 'update_engine' })).toBe(1);
});

test('the lock: requests and failures by reason, etcd errors, and slots read once per scrape for both gauges', async () => {
  const registry = newRegistry('fleetlockd');
  let reads = 0;
  const m = new LockMetrics(registry, async (group) => {
    reads++;
    if (group === 'down') throw new Error('etcd unreachable');
    return group === 'a' ? { total_slots: 2, holders: ['x'] } : undefined;
  });
  for (const g of ['a', 'b', 'down']) m.watch(g);
  m.request('lock', 'ok');
  m.request('lock', 'refused', 'failed_lock_semaphore_full');
  m.request('unlock', 'failed', 'etcd');
  const text = await registry.metrics();
  expect(reads).toBe(3);
  expect(sample(text, 'bootsmith_lock_slots', { group: 'a' })).toBe(2);
  expect(sample(text, 'bootsmith_lock_holders', { group: 'a' })).toBe(1);
  expect(sample(text, 'bootsmith_lock_slots', { group: 'b' })).toBeUndefined();
  expect(sample(text, 'bootsmith_lock_requests_total', { operation: 'lock', result: 'refused' })).toBe(1);
  expect(sample(text, 'bootsmith_lock_failures_total', { operation: 'unlock', reason: 'etcd' })).toBe(1);
  expect(sample(text, 'bootsmith_etcd_errors_total', { operation: 'unlock' })).toBe(1);
  expect(sample(text, 'bootsmith_etcd_errors_total', { operation: 'read' })).toBe(1);
  // Two registries, two sets: nothing is shared through prom-client's global registry.
  const other = newRegistry('locksmithd');
  new LockMetrics(other);
  expect(sample(await other.metrics(), 'bootsmith_lock_requests_total', { operation: 'lock', result: 'ok' })).toBeUndefined();
});
