/**
 * A transfer rate as a moving average: bytes per second over the last `windowMs` of samples (or
 * since the first sample, when that is shorter). A steady transfer reads the same as its overall
 * average; a stall or a burst shows within the window instead of being diluted by the past.
 */
export class RateMeter {
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  /** @param windowMs how far back the average reaches, in ms. Default 3,000. */
  constructor(private readonly windowMs = 3_000) {}

  /**
   * Records that `bytes` (a running total) were done at `at` (ms, any monotonic clock) and gives
   * the rate in bytes per second over the window ending there; 0 before there are two samples
   * apart in time.
   */
  sample(at: number, bytes: number): number {
    this.samples.push({ at, bytes });
    // Keep one sample at or before the window's start, so the window is always covered.
    while (this.samples.length > 2 && this.samples[1]!.at <= at - this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (at - first.at) / 1000;
    return seconds > 0 ? (bytes - first.bytes) / seconds : 0;
  }
}
