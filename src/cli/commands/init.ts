import { existsSync, mkdirSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateAuditKeyPem } from '../../audit/checkpoint.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { parse } from '../args.ts';
import type { CommandResult } from '../command.ts';

const CONFIG = `// Spine configuration. Every field is documented in docs/config.md.
{
  agents: {
    // Plans the work: hands the question to the helper, saves a note, answers.
    lead: {
      kind: 'function',
      module: './agents/lead.ts',
      timeoutMs: 30000,
      // Tools are denied unless granted: lead may save notes and nothing else.
      grants: { tools: ['notes.*'] },
    },
    // Does one piece of the work.
    helper: { kind: 'function', module: './agents/helper.ts' },
    // Any executable speaking the turn protocol works too, e.g.:
    // researcher: { kind: 'command', command: ['python3', 'agents/researcher.py'] },
  },
  tools: {
    // Tools run in the hub, never in the agent; each call is recorded once in the effects ledger.
    'notes.save': { module: './tools/notes.ts', description: 'Appends a note to .spine/notes.jsonl' },
  },
  retry: { maxAttempts: 3, initialMs: 500, maxMs: 60000 },
  limits: { maxDepth: 8, maxTurns: 50 },
  worker: { concurrency: 8, leaseMs: 30000 },
  store: { durability: 'strict' },
  // The Ed25519 key audit checkpoints are signed with (docs/audit.md). Made by \`spine init\`,
  // kept out of the database and out of git (.spine/ is ignored): back it up.
  audit: { signingKeyFile: '.spine/audit-signing.key' },
}
`;

const LEAD = `// A function agent: one stateless turn at a time. The hub hands it the task, the
// history of its earlier turns and the results of its last actions (docs/agent-protocol.md).
interface Turn {
  task: { input: { text?: string }; turn: number };
  results: Array<{ type: string; ok: boolean; value?: unknown; error?: { message: string } }>;
}

export default function lead(turn: Turn) {
  const question = turn.task.input.text ?? '';
  if (turn.task.turn === 1) {
    // Fan out: the helper works on it while the hub records a note.
    return {
      actions: [
        { type: 'handoff', agent: 'helper', input: { text: question } },
        { type: 'tool', tool: 'notes.save', input: { note: \`asked: \${question}\` } },
      ],
    };
  }
  const [help, note] = turn.results;
  return {
    output: {
      question,
      answer: help?.ok ? help.value : \`helper failed: \${help?.error?.message}\`,
      noted: note?.ok ?? false,
    },
  };
}
`;

const HELPER = `interface Turn {
  task: { input: { text?: string } };
}

export default function helper(turn: Turn) {
  const text = turn.task.input.text ?? '';
  return { output: \`\${text.split(/\\s+/).filter(Boolean).length} words, \${text.length} characters\` };
}
`;

const TOOL = `import { appendFileSync, mkdirSync } from 'node:fs';

// A tool receives its input and a context whose idempotencyKey names its place in the
// run; pass it on to external APIs so a rare re-execution after a crash is harmless.
export default function save(input: { note?: string }, ctx: { idempotencyKey: string }) {
  mkdirSync('.spine', { recursive: true });
  appendFileSync('.spine/notes.jsonl', JSON.stringify({ key: ctx.idempotencyKey, note: input.note ?? '' }) + '\\n');
  return { saved: true };
}
`;

export async function initCommand(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean' } }, 1);
  const dir = resolve(positionals[0] ?? '.');
  const configFile = join(dir, 'spine.config.json5');
  if (existsSync(configFile) && !values.force) {
    throw new InvalidInputError('dir', `${configFile} already exists (use --force to overwrite the scaffold)`);
  }
  mkdirSync(join(dir, 'agents'), { recursive: true });
  mkdirSync(join(dir, 'tools'), { recursive: true });
  const files: Array<[string, string]> = [
    ['spine.config.json5', CONFIG],
    ['agents/lead.ts', LEAD],
    ['agents/helper.ts', HELPER],
    ['tools/notes.ts', TOOL],
  ];
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  // The audit signing key: made once, never overwritten (checkpoints signed with it must stay checkable).
  mkdirSync(join(dir, '.spine'), { recursive: true });
  const keyFile = join(dir, '.spine', 'audit-signing.key');
  if (!existsSync(keyFile)) writeFileSync(keyFile, generateAuditKeyPem(), { mode: 0o600 });
  const gitignore = join(dir, '.gitignore');
  const ignored = existsSync(gitignore) ? readFileSync(gitignore, 'utf8') : '';
  // The store and the marker that remembers it (a store that goes missing is then an error, not a fresh start).
  for (const line of ['.spine/', '.spine-stores']) if (!ignored.split('\n').includes(line)) appendFileSync(gitignore, `${line}\n`);
  // Type-stripped .ts agents need an ESM package scope.
  const pkg = join(dir, 'package.json');
  if (!existsSync(pkg)) writeFileSync(pkg, JSON.stringify({ name: 'spine-project', private: true, type: 'module' }, null, 2) + '\n');
  if (values.json) return { stdout: JSON.stringify({ dir, files: files.map(([n]) => n) }, null, 2) };
  return {
    stdout: [
      `Scaffolded a Spine project in ${dir}:`,
      ...files.map(([n]) => `  ${n}`),
      '  .spine/audit-signing.key   (signs audit checkpoints; never stored in the database — back it up)',
      '',
      'Next:',
      '  spine up                                  # run workers (Ctrl-C to stop)',
      '  spine send lead "hello spine" --wait      # in another terminal',
      '  spine runs list',
    ].join('\n'),
  };
}
