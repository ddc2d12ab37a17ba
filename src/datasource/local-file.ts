/** Reading a file a datasource finds on this machine (a mounted config drive, the Azure agent's directory): bounded, and never a FIFO or a device. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * A regular file's bytes, or undefined when it is missing. The file is outside us: a FIFO or a
 * device (which could block or stream for ever) and a file over `limit` bytes are refused before
 * any byte is read, with an error that starts with `where` and names the file as `name`.
 */
export async function readSourceFile(path: string, where: string, name: string, limit: number): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`${where}: ${name} is not a regular file`);
    if (st.size > limit) throw new Error(`${where}: ${name} is ${st.size} bytes, more than the ${limit} accepted`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    for (let n = -1; n !== 0 && done < st.size; done += n) n = (await handle.read(buf, done, st.size - done, done)).bytesRead;
    return buf.subarray(0, done);
  } finally {
    await handle.close();
  }
}
