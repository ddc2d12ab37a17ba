/**
 * bzip2 for payload chunks, through the system's bzip2 (libbz2; a chunk of 1 MiB takes tens of
 * milliseconds, so a process per chunk costs little and gives every chunk its own exact output and
 * error). Several run at once, one per core, so decompression uses the whole machine.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

export const bzip2Command = 'bzip2';

/** Runs bzip2 with `args` over `input`; its output, failing when it exceeds `limit` bytes. */
function run(args: string[], input: Buffer, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(bzip2Command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
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
    child.on('error', (err) => reject(new Error(`cannot run ${bzip2Command}: ${err.message}`)));
    child.stdin.on('error', () => undefined); // bzip2 quit early; its exit status says why
    child.on('close', (code, signal) => {
      if (failed) reject(failed);
      else if (code !== 0) reject(new Error(`bzip2: ${stderr.trim().replace(/^bzip2: /, '') || `exit ${code ?? signal}`}`));
      else resolve(Buffer.concat(out, size));
    });
    child.stdin.end(input);
  });
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
    return this.slot(() => run(['-dc'], data, limit));
  }

  compress(data: Buffer): Promise<Buffer> {
    return this.slot(() => run(['-9c'], data, data.length * 2 + 1024));
  }
}
