#!/usr/bin/env node
// Entry point of the `spine` command. Spine runs its TypeScript sources directly,
// which needs Node 24 (type stripping, node:sqlite). Under Node 24 or newer it runs
// in this process. Under an older Node, it hands over to the Node 24 that
// `npm install` put beside Spine (the node@24 dev dependency), in a child process
// that lives and dies with this launcher.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { heapFlagsOf } from './heap-flags.js';

/** Set by the launcher for its child; the child reads and removes it (its own children must not see it). */
const LAUNCHED = 'SPINE_LAUNCHED_BY';
/** Every signal a supervisor, a script or a terminal may send to stop or poke a process. */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', 'SIGWINCH'];

function heapFlags(args) {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return heapFlagsOf(args[0]).filter((flag) => !given.some((g) => g.split('=')[0] === flag.split('=')[0]));
}

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const bundled = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(bundled)) {
    process.stderr.write(
      `spine: needs Node.js 24 or newer, but this is ${process.version}, and no bundled Node 24 was found.\n` +
        'Run `npm install` in the Spine folder (it brings Node 24 along), or install Node 24.\n',
    );
    process.exit(2);
  }
  // The child gets its own process group, so a terminal's Ctrl-C reaches it once, through
  // this launcher, like a `kill -INT` from a script; and an IPC channel, whose end (this
  // launcher died, even by SIGKILL) makes the child stop too.
  const child = spawn(bundled, [...heapFlags(process.argv.slice(2)), fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    detached: true,
    env: { ...process.env, [LAUNCHED]: String(process.pid) },
  });
  for (const sig of FORWARDED) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) {
      // Die of the same signal, so whoever started us sees what the child saw.
      for (const sig of FORWARDED) process.removeAllListeners(sig);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 128 + (signal ? (constants.signals[signal] ?? 1) : 1));
  });
} else {
  const flags = heapFlags(process.argv.slice(2));
  if (flags.length > 0 && process.platform !== 'win32' && typeof process.execve === 'function') {
    // Start again with the flags, in this same process (pid, stdio and signals stay).
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...flags, fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
  }
  if (process.env[LAUNCHED] !== undefined && process.channel) {
    delete process.env[LAUNCHED];
    // Started by the launcher above: its channel must not keep this process alive, and its
    // end means the launcher is gone, so stop as if told to (a draining process stops at once).
    process.channel.unref();
    process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  }
  // Spine's sources are TypeScript: cache their stripped and compiled form on disk (in the
  // OS temp folder), so a command after the first starts without stripping types again.
  const { enableCompileCache } = await import('node:module');
  enableCompileCache?.();
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
