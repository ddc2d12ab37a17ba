/**
 * Milliseconds on a monotonic clock, for timings. Node's global `performance` loads perf_hooks and
 * its eight modules on first use, about 1.2 ms of a start; process.hrtime is already there.
 */
export function millis(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
