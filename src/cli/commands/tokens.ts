import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { hashToken, newTokenSecret, parseScope } from '../../gateway/auth.ts';
import type { ApiToken } from '../../store/tokens.ts';
import { parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { table, when } from '../format.ts';
import type { CommandResult } from '../command.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

export async function tokensCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return create(rest);
    case 'list':
      return list(rest);
    case 'revoke':
      return revoke(rest);
    default:
      throw new InvalidInputError('tokens', sub ? `unknown subcommand "${sub}" (create, list, revoke)` : 'needs a subcommand: create, list or revoke');
  }
}

async function create(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { name: { type: 'string' }, scope: { type: 'string', multiple: true }, quiet: { type: 'boolean', short: 'q' } }, 0);
  const name = values.name;
  if (!name) throw new InvalidInputError('--name', 'required (who the token is for; recorded as the decider of approvals)');
  if (!NAME.test(name)) throw new InvalidInputError('--name', `"${name}": 1–64 letters, digits, _ . @ or -, starting with a letter or digit`);
  const raw = values.scope ?? [];
  if (raw.length === 0) throw new InvalidInputError('--scope', 'at least one is required: admin, operator, viewer or ingress:<channel>');
  const scopes = [...new Set(raw.flatMap((s) => s.split(',')).map((s) => parseScope(s.trim())))];
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    if ((await store.tokens.list()).some((t) => t.name === name && t.revokedAt === null)) {
      throw new InvalidInputError('--name', `a live token named "${name}" exists already (revoke it first, or choose another name)`);
    }
    const secret = newTokenSecret();
    const token = await store.tokens.create({ id: newId('tok'), name, hash: hashToken(secret), scopes }, Date.now());
    if (values.json) return { stdout: JSON.stringify({ token, secret }, null, 2) };
    // -q: the secret alone, for `export TOKEN=$(spine tokens create … -q)`.
    if (values.quiet) return { stdout: secret };
    return {
      stdout: [
        `created token ${token.id} "${name}" (scopes: ${scopes.join(', ')})`,
        '',
        `  ${secret}`,
        '',
        'Copy it now: it is shown only this once. Use it as  Authorization: Bearer <token>',
      ].join('\n'),
    };
  } finally {
    await store.close();
  }
}

async function list(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { all: { type: 'boolean' } }, 0);
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const tokens = (await store.tokens.list()).filter((t) => values.all || t.revokedAt === null);
    if (values.json) return { stdout: JSON.stringify({ tokens }, null, 2) };
    if (tokens.length === 0) return { stdout: values.all ? 'no tokens' : 'no live tokens (create one with `spine tokens create --name <name> --scope admin`)' };
    return {
      stdout: table(
        ['ID', 'NAME', 'SCOPES', 'CREATED', 'LAST USED', ...(values.all ? ['REVOKED'] : [])],
        tokens.map((t) => [t.id, t.name, t.scopes.join(','), when(t.createdAt), when(t.lastUsedAt), ...(values.all ? [when(t.revokedAt)] : [])]),
      ),
    };
  } finally {
    await store.close();
  }
}

async function revoke(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, {}, 1);
  const ref = positionals[0];
  if (!ref) throw new InvalidInputError('<token-id|name>', 'missing');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const live = (await store.tokens.list()).filter((t) => t.revokedAt === null);
    const token: ApiToken | undefined = live.find((t) => t.id === ref) ?? live.find((t) => t.name === ref);
    if (!token || !(await store.tokens.revoke(token.id, Date.now()))) throw new NotFoundError('live token', ref);
    return { stdout: values.json ? JSON.stringify({ revoked: token.id, name: token.name }, null, 2) : `revoked token ${token.id} "${token.name}"` };
  } finally {
    await store.close();
  }
}
