#!/usr/bin/env node
// Entry point of the `spine` command. Spine runs its TypeScript sources directly,
// which needs Node 24 (type stripping, node:sqlite). Under an older Node, hand over
// to the Node 24 that `npm install` put beside Spine (the node@24 dev dependency).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const bundled = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (existsSync(bundled)) {
    const child = spawn(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
    // A terminal's Ctrl-C already reaches the whole process group; forward the signals it does not.
    process.on('SIGINT', () => {});
    for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
    child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 1)));
  } else {
    process.stderr.write(
      `spine: needs Node.js 24 or newer, but this is ${process.version}, and no bundled Node 24 was found.\n` +
        'Run `npm install` in the Spine folder (it brings Node 24 along), or install Node 24.\n',
    );
    process.exit(2);
  }
} else {
  // Spine's sources are TypeScript: cache their stripped and compiled form on disk (in the
  // OS temp folder), so a command after the first starts without stripping types again.
  const { enableCompileCache } = await import('node:module');
  enableCompileCache?.();
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
