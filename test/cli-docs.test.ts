// docs/cli.md against the CLI: every command it documents (each `### \`spine …\``
// heading) is one the CLI knows — `spine <command> --help` answers with exit 0 — and
// every flag the heading names is one that command's help (src/cli/help.ts) names, so
// the page cannot document a flag the command does not take. The README's tour runs
// for real in test/readme-tour.test.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HELP } from '../src/cli/help.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

function help(command: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, command, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

it('every command and flag in docs/cli.md is one the CLI has', async () => {
  const doc = readFileSync(new URL('../docs/cli.md', import.meta.url), 'utf8');
  const headings = [...doc.matchAll(/^### `spine ([a-z]+)([^`]*)`/gm)].map((m) => ({ command: m[1]!, rest: m[2]! }));
  assert.ok(headings.length >= 15, `docs/cli.md documents the commands (${headings.length})`);
  for (const { command, rest } of headings) {
    assert.ok(command in HELP, `docs/cli.md documents \`spine ${command}\`, which the CLI does not have`);
    const text = HELP[command as keyof typeof HELP];
    for (const [flag] of rest.matchAll(/--[a-z][a-z-]*/g)) {
      assert.ok(text.includes(flag), `docs/cli.md gives \`spine ${command} … ${flag}\`, which its help does not name`);
    }
  }
  for (const command of new Set(headings.map((h) => h.command))) {
    const r = await help(command);
    assert.equal(r.code, 0, `spine ${command} --help`);
    assert.match(r.stdout, new RegExp(`spine ${command}\\b`));
  }
});
