/**
 * bootsmith-update-server: Omaha for a channel tree as `npm run images` lays it out, for labs,
 * tests and air-gapped fleets. Machines point SERVER= at http://HOST:PORT/v1/update/.
 * GET /admin/status shows channels, halted versions and machines; POST
 * /admin/resume?channel=C&version=V resumes a halted rollout. SIGTERM stops it.
 */
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { UpdateServer } from '../update/server';
import { parseArgs, parseListen, untilStopped } from './options';
import { version } from '../version';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('bootsmith-update-server')
    .description('serve Omaha updates for a channel tree (<tree>/<channel>/<board>/<version>/flatcar_production_update.gz)')
    .version(version)
    .requiredOption('--tree <dir>', 'the channel tree')
    .option('--listen <host:port>', 'where to listen', '127.0.0.1:8080')
    .option('--board <board>', 'the board directory of each channel', 'amd64-usr')
    .option('--state-dir <dir>', 'where events (events.jsonl) and halted versions are kept')
    .exitOverride();
  const done = parseArgs(program, argv);
  if (done !== undefined) return done;
  const opts = program.opts<{ tree: string; listen: string; board: string; stateDir?: string }>();
  const listen = parseListen(opts.listen);
  if (!listen) {
    process.stderr.write(`bootsmith-update-server: --listen ${opts.listen} is not HOST:PORT\n`);
    return 2;
  }
  if (!existsSync(opts.tree)) {
    process.stderr.write(`bootsmith-update-server: the channel tree ${opts.tree} does not exist (npm run images builds one)\n`);
    return 2;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const server = new UpdateServer({ tree: opts.tree, board: opts.board, ...(opts.stateDir ? { stateDir: opts.stateDir } : {}), log });
  let url: string;
  try {
    url = await server.listen(listen.port, listen.host);
  } catch (err) {
    process.stderr.write(`bootsmith-update-server: cannot listen on ${opts.listen}: ${(err as Error).message}\n`);
    return 1;
  }
  log(`serving ${opts.tree} at ${url}/v1/update/`);
  await untilStopped();
  await server.close();
  return 0;
}
