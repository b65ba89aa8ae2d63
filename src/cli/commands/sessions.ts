import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { intOption, parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { short, table, when } from '../format.ts';
import type { CommandResult } from '../command.ts';

export async function sessionsCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { agent: { type: 'string' }, limit: { type: 'string' }, as: { type: 'string' } }, sub === 'list' ? 0 : 1);
  const config = await maybeConfig(values);
  const historyLimit = intOption('limit', values.limit) ?? config?.routing.sessions.historyLimit ?? 20;
  const store = await openCliStore(values, config);
  try {
    switch (sub) {
      case 'list': {
        const sessions = await store.sessions.list({ limit: intOption('limit', values.limit) ?? 50, ...(values.agent ? { agent: values.agent } : {}) });
        if (values.json) return { stdout: JSON.stringify({ sessions }, null, 2) };
        if (sessions.length === 0) return { stdout: 'no sessions' };
        return {
          stdout: table(
            ['SESSION', 'AGENT', 'MESSAGES', 'LANE', 'LAST ACTIVE', 'RESET'],
            sessions.map((s) => [s.key, s.agent, String(s.messages), s.activeRun ?? 'free', when(s.lastActivityAt), s.resetAt ? when(s.resetAt) : '-']),
          ),
        };
      }
      case 'show': {
        const key = need(positionals[0]);
        const session = await store.sessions.get(key);
        if (!session) throw new NotFoundError('session', key);
        const history = await store.sessions.messages(key, historyLimit);
        if (values.json) return { stdout: JSON.stringify({ session, history }, null, 2) };
        return {
          stdout: [
            `session   ${session.key}`,
            `agent     ${session.agent}`,
            `lane      ${session.activeRun ?? 'free'}`,
            `messages  ${session.messages} (epoch ${session.epoch}${session.resetAt ? `, reset ${when(session.resetAt)}` : ''})`,
            ...(session.forkedFrom ? [`forked    from ${session.forkedFrom}`] : []),
            '',
            history.length ? history.map((m) => `${when(m.at)}  ${m.role.padEnd(5)}  ${short(m.text ?? m.output ?? m.input, 100)}`).join('\n') : '(no history in the current epoch)',
          ].join('\n'),
        };
      }
      case 'reset': {
        const key = need(positionals[0]);
        await store.sessions.reset(key, 'cli', Date.now());
        return { stdout: values.json ? JSON.stringify({ reset: key }) : `session ${key} reset: later turns start afresh` };
      }
      case 'fork': {
        const key = need(positionals[0]);
        const source = await store.sessions.get(key);
        if (!source) throw new NotFoundError('session', key);
        const forked = await store.sessions.fork(key, values.as ?? `agent:${source.agent}:fork:${newId('s')}`, historyLimit, 'cli', Date.now());
        return { stdout: values.json ? JSON.stringify({ session: forked }, null, 2) : `forked ${key} → ${forked.key}` };
      }
      default:
        throw new InvalidInputError('sessions', sub ? `unknown subcommand "${sub}" (list, show, reset, fork)` : 'needs a subcommand: list, show, reset or fork');
    }
  } finally {
    await store.close();
  }
}

function need(key: string | undefined): string {
  if (!key) throw new InvalidInputError('<key>', 'missing (see `spine sessions list`)');
  return key;
}
