/**
 * Standard output and error for a program that prints its report and exits: written with write(2)
 * on the descriptor. Node's process.stdout and process.stderr load the whole stream stack when
 * first touched, about 3 ms of a 60 ms start, which a validation run otherwise spends on nothing.
 */
import { fstatSync, writeSync } from 'node:fs';

export interface DirectOutput {
  write(s: string): boolean;
  /** A terminal, as far as colours go: a character device (a tty, or /dev/null, where colours harm nothing). */
  readonly isTTY: boolean;
}

/**
 * A writer for descriptor 1 or 2. Each write goes out whole, in order. When the descriptor is a
 * non-blocking pipe that is full (EAGAIN), the rest of that write and every later one go through
 * process.stdout or process.stderr, which queue them and drain them before the process exits.
 */
export function directOutput(fd: 1 | 2): DirectOutput {
  let stream: NodeJS.WriteStream | undefined;
  let isTTY: boolean | undefined;
  return {
    write(s: string): boolean {
      if (stream) return stream.write(s);
      const bytes = Buffer.from(s);
      let done = 0;
      try {
        while (done < bytes.length) done += writeSync(fd, bytes, done);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        stream = fd === 1 ? process.stdout : process.stderr;
        return stream.write(bytes.subarray(done));
      }
    },
    get isTTY(): boolean {
      isTTY ??= (() => {
        try {
          return fstatSync(fd).isCharacterDevice();
        } catch {
          return false;
        }
      })();
      return isTTY;
    },
  };
}
