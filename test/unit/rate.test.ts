/** The write rate shown with the payload progress: a moving average over a window of samples. */
import { RateMeter } from '../../src/update/rate';

test('a steady transfer reads as its average; before two samples apart, 0', () => {
  const m = new RateMeter(3_000);
  expect(m.sample(0, 0)).toBe(0);
  expect(m.sample(0, 0)).toBe(0);
  expect(m.sample(1_000, 10_000_000)).toBe(10_000_000);
  expect(m.sample(5_000, 50_000_000)).toBe(10_000_000);
});

test('a stall shows within the window, not diluted by the past', () => {
  const m = new RateMeter(3_000);
  for (let s = 0; s <= 10; s++) m.sample(s * 1_000, s * 10_000_000);
  // nothing more for 3 s: the window holds no progress
  m.sample(12_000, 100_000_000);
  expect(m.sample(13_000, 100_000_000)).toBe(0);
  // the overall average would still say 7.7 MB/s
});

test('a window shorter than the transfer so far: the average since the first sample', () => {
  const m = new RateMeter(10_000);
  m.sample(0, 0);
  m.sample(1_000, 1_000);
  expect(m.sample(2_000, 5_000)).toBe(2_500);
});
