/**
 * `npm run start:llm`: the briefing example on real models when a provider is set up
 * (OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY), the offline example when
 * not. Arguments: the question, and any `spine up` flags (e.g. `--exit`).
 *
 *   npm run start:llm -- "Should we adopt a four-day week?" --exit
 */
import { spawn } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const env = process.env;
const set = (name: string) => (env[name] ?? '') !== '';

const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const words = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const question = words.join(' ') || 'Should we move our agent workflows onto a durable orchestrator?';

const live = set('OPENAI_API_KEY') || set('OPENAI_BASE_URL') || set('ANTHROPIC_API_KEY');
if (live) {
  const via: string[] = [];
  if (set('OPENAI_API_KEY') || set('OPENAI_BASE_URL')) via.push(`OpenAI-compatible ${env.OPENAI_MODEL ?? 'gpt-4o-mini'}${set('OPENAI_BASE_URL') ? ` at ${env.OPENAI_BASE_URL}` : ''}`);
  if (set('ANTHROPIC_API_KEY')) via.push(`Anthropic ${env.ANTHROPIC_MODEL ?? 'claude-haiku-4-5'}${via.length ? ' (fallback)' : ''}`);
  console.log(`LLM mode: ${via.join(', then ')}.`);
} else {
  console.log('No model configured (set OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY): running the offline example. See docs/llm-agents.md.');
}

const config = relative(process.cwd(), join(here, live ? 'spine.llm.config.json5' : 'spine.config.json5'));
const child = spawn(process.execPath, [join(root, 'src', 'cli', 'main.ts'), 'up', '--config', config, '--send', 'commander', '--text', question, ...flags], { stdio: 'inherit' });
// Ctrl-C reaches the child too (same process group); wait for it to drain instead of dying first.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
