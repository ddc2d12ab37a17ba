/**
 * bzip2 for payload chunks, through the system's decoders, one process per core at a time.
 * Decompressing uses lbzip2 on one thread where it is installed (it decodes the same streams a
 * quarter faster than bzip2, and writes its output in blocks of 900 kB), else bzip2 (libbz2)
 * under `stdbuf -o 1M` where coreutils has it, so its output arrives in large writes instead of
 * 4 KiB ones; compressing always uses bzip2, so a payload's bytes do not depend on the machine.
 * Several consecutive chunks go to one process (both decode concatenated streams), so the cost
 * of starting processes is paid once per batch rather than once per 1 MiB chunk. A batch whose
 * output does not split exactly into its chunks' sizes is done again a chunk at a time, so an
 * error names the chunk it belongs to.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export const bzip2Command = 'bzip2';
const stdbuf = '/usr/bin/stdbuf';
/** lbzip2, where Debian's package puts it. */
const lbzip2 = '/usr/bin/lbzip2';

/** A program and its arguments, and how its error messages begin (to take off). */
interface Command {
  cmd: string;
  argv: string[];
  name: string;
}

/** The commands, looked up once (not for every process): stdbuf's and lbzip2's presence. */
let commands: { decompress: Command; compress: Command } | undefined;

function lookUp(): { decompress: Command; compress: Command } {
  const buffered = (args: string[]): Command =>
    existsSync(stdbuf) ? { cmd: stdbuf, argv: ['-o', '1M', bzip2Command, ...args], name: bzip2Command } : { cmd: bzip2Command, argv: args, name: bzip2Command };
  return {
    decompress: existsSync(lbzip2) ? { cmd: lbzip2, argv: ['-n1', '-dc'], name: 'lbzip2' } : buffered(['-dc']),
    compress: buffered(['-9c']),
  };
}

/**
 * What a decoder's failure says, as bzip2's own words: lbzip2's data errors ("compressed data
 * error", "unexpected end of file", "not a valid bzip2 file") all mean corrupt data.
 */
function failure(command: Command, stderr: string, status: string): string {
  const said = stderr.trim().replace(new RegExp(`^${command.name}: `), '');
  if (command.name === bzip2Command) return `bzip2: ${said || `exit ${status}`}`;
  return `bzip2: the data is corrupt (${command.name}: ${said.replace(/^stdin: /, '') || `exit ${status}`})`;
}

/** Runs `command` over `inputs`, one after the other; its output, failing when it exceeds `limit` bytes. */
function run(command: Command, inputs: Buffer[], limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command.cmd, command.argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let failed: Error | undefined;
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size > limit && !failed) {
        failed = new Error(`bzip2 output exceeds the ${limit} bytes the operation's extents hold`);
        child.kill();
      }
      out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new Error(`cannot run ${command.name}: ${err.message}`)));
    child.stdin.on('error', () => undefined); // bzip2 quit early; its exit status says why
    child.on('close', (code, signal) => {
      if (failed) reject(failed);
      else if (code !== 0) reject(new Error(failure(command, stderr, String(code ?? signal))));
      else resolve(out.length === 1 ? out[0]! : Buffer.concat(out, size));
    });
    for (const input of inputs) child.stdin.write(input);
    child.stdin.end();
  });
}

/** A chunk to decompress and the most it may produce; all but the last of a batch must fill `capacity` exactly. */
export interface Chunk {
  data: Buffer;
  capacity: number;
  /** The least it may produce: the last block may be partly padding. */
  minimum: number;
}

/** A limit on how many bzip2 processes run at once. */
export class Bzip2Pool {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size = availableParallelism()) {}

  private async slot<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.size) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await work();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  decompress(data: Buffer, limit: number): Promise<Buffer> {
    commands ??= lookUp();
    return this.slot(() => run(commands!.decompress, [data], limit));
  }

  /**
   * Decompresses consecutive chunks in one process and splits the output by their capacities.
   * When that does not fit, the error of each chunk is found by doing them one at a time: the
   * rejection is the first chunk's error, with its index.
   */
  async decompressBatch(chunks: Chunk[]): Promise<Buffer[]> {
    const total = chunks.reduce((n, c) => n + c.capacity, 0);
    commands ??= lookUp();
    const out = await this.slot(() => run(commands!.decompress, chunks.map((c) => c.data), total)).catch(() => undefined);
    if (out) {
      const parts: Buffer[] = [];
      let at = 0;
      for (const [i, c] of chunks.entries()) {
        const last = i === chunks.length - 1;
        const take = last ? out.length - at : c.capacity;
        if (take < c.minimum || take > c.capacity) break;
        parts.push(out.subarray(at, at + take));
        at += take;
      }
      if (parts.length === chunks.length) return parts;
    }
    const parts: Buffer[] = [];
    for (const [i, c] of chunks.entries()) {
      const part = await this.decompress(c.data, c.capacity).catch((err: Error) => {
        throw Object.assign(new Error(err.message), { chunk: i });
      });
      if (part.length < c.minimum) throw Object.assign(new Error(`it produces ${part.length} bytes, less than its ${c.minimum}`), { chunk: i });
      parts.push(part);
    }
    return parts;
  }

  compress(data: Buffer): Promise<Buffer> {
    commands ??= lookUp();
    return this.slot(() => run(commands!.compress, [data], data.length * 2 + 1024));
  }
}
