/**
 * Choosing among the datasources given: all are asked at once and the first that answers with
 * data wins, as coreos-cloudinit does. Sources that are not there are skipped; when none answers,
 * the error names what each one said.
 */
import type { Datasource, Fetched } from './types';

function where(source: Datasource): string {
  return source.location ?? source.name;
}

export async function firstAnswer(sources: Datasource[]): Promise<Fetched> {
  if (sources.length === 0) throw new Error('no datasource given');
  const reasons: string[] = new Array(sources.length);
  return new Promise((resolve, reject) => {
    let pending = sources.length;
    let done = false;
    sources.forEach((source, i) => {
      source.fetch().then(
        (fetched) => {
          if (fetched && !done) {
            done = true;
            resolve(fetched);
          } else if (!fetched) reasons[i] = `${where(source)}: not there`;
        },
        (err: unknown) => {
          // Named by where it looked, once: most messages start with the URL or path already.
          const message = (err as Error).message;
          reasons[i] = message.startsWith(where(source)) ? message : `${where(source)}: ${message}`;
        },
      ).finally(() => {
        if (--pending === 0 && !done) reject(new Error(`no datasource answered (${reasons.filter(Boolean).join('; ')})`));
      });
    });
  });
}
