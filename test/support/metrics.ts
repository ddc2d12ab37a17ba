/** Scraping /metrics in tests. */
import { createServer } from 'node:net';

/** The text of GET `url` (its status must be 200). */
export async function scrape(url: string, init?: RequestInit): Promise<string> {
  const res = await fetch(url, init);
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  return res.text();
}

/**
 * The value of the sample `name` whose labels include `labels` (the first one; label order does
 * not matter); undefined when there is none.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** A port free on loopback now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `check` holds (checked every 50 ms), rejects after `ms`. */
export function until(check: () => boolean | Promise<boolean>, ms = 15_000, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = async () => {
      let ok = false;
      try {
        ok = await check();
      } catch {
        ok = false;
      }
      if (ok) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(() => void tick(), 50);
    };
    void tick();
  });
}
