import { z } from 'zod';
import { httpUrl, secretValue, type SecretValue } from '../config/fields.ts';
import { SecretUnsetError, type FieldIssue } from '../core/errors.ts';
import { DEFAULT_OUTBOX, type OutboxOptions } from '../engine/outbox-dispatcher.ts';
import { ed25519PublicKey } from './platform.ts';

/**
 * `channels` in spine.config.json5: per platform, per account, its secrets and API
 * base URL, plus `outbox` (how replies are retried). Secrets are given inline or as
 * `{ env: 'VAR' }`, read when first used; an unset variable fails only that
 * channel (SECRET_UNSET naming the field), and is warned about when a process that
 * serves channels starts. Webhook URLs are `POST /v1/channels/<channel>/<account>`.
 */

/** A secret inline, or the name of the environment variable that holds it. */
const secret = secretValue;
type Secret = SecretValue;

/** Account names are the last segment of the webhook URL. */
const accountName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'account names are 1–128 letters, digits, _, . or - (a URL path segment)');
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
  .transform((h) => h.toLowerCase());
const toleranceSec = z.number().int().min(1).max(86_400);

const webhookAccount = z.strictObject({
  /** The HMAC-SHA256 key. */
  secret,
  /** Header holding the signature, as `<hex>` or `sha256=<hex>` (default `x-hub-signature-256`). */
  signatureHeader: headerName.optional(),
  /** If set, the signature covers `<timestamp>.<body>` and the timestamp must be within toleranceSec. */
  timestampHeader: headerName.optional(),
  toleranceSec: toleranceSec.optional(),
  /** Header with the sender's delivery id, used as idempotency key (default: X-GitHub-Delivery, X-Delivery-Id, Idempotency-Key). */
  deliveryHeader: headerName.optional(),
  /** Header naming the event type, copied into data.event (default `x-github-event`). */
  eventHeader: headerName.optional(),
  /** Dotted path of the text in the JSON body (e.g. `head_commit.message`); default: the whole body. */
  textField: z.string().min(1).optional(),
  /** Where replies are POSTed (signed the same way); without it the webhook channel does not reply. */
  replyUrl: httpUrl.optional(),
});

const slackAccount = z.strictObject({
  signingSecret: secret,
  botToken: secret,
  apiBaseUrl: httpUrl.optional(),
  /** Oldest accepted X-Slack-Request-Timestamp, in seconds (default 300). */
  toleranceSec: toleranceSec.optional(),
});

const telegramAccount = z.strictObject({
  /** The `secret_token` given to setWebhook: 1–256 of A–Z a–z 0–9 _ -. */
  secretToken: z.union([z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, 'Telegram secret tokens are 1–256 of A-Z a-z 0-9 _ -'), z.strictObject({ env: z.string().min(1) })]),
  botToken: secret,
  apiBaseUrl: httpUrl.optional(),
});

const discordAccount = z.strictObject({
  /** The application's public key (64 hex characters), from the developer portal. */
  publicKey: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the 32-byte Ed25519 public key as 64 hex characters'),
  applicationId: z.string().regex(/^\d{1,20}$/, 'must be the application id (a snowflake)'),
  /** Only needed to post to channels (agents' deliver actions, or after an interaction token expired). */
  botToken: secret.optional(),
  apiBaseUrl: httpUrl.optional(),
  /** Oldest accepted X-Signature-Timestamp, in seconds (default 300). */
  toleranceSec: toleranceSec.optional(),
});

function platform<T extends z.ZodType>(account: T) {
  return z.strictObject({ accounts: z.record(accountName, account) }).optional();
}

export const channelsSchema = z.strictObject({
  webhook: platform(webhookAccount),
  slack: platform(slackAccount),
  telegram: platform(telegramAccount),
  discord: platform(discordAccount),
  /** The outbox dispatcher: batches, retries and backoff of outbound messages. */
  outbox: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(100).optional(),
      initialMs: z.number().int().min(1).optional(),
      maxMs: z.number().int().min(1).optional(),
      factor: z.number().min(1).max(10).optional(),
      jitter: z.enum(['full', 'none']).optional(),
      batch: z.number().int().min(1).max(256).optional(),
      pollMs: z.number().int().min(10).optional(),
      leaseMs: z.number().int().min(1_000).optional(),
      timeoutMs: z.number().int().min(100).max(300_000).optional(),
    })
    .optional(),
});

export type ChannelsConfig = z.infer<typeof channelsSchema>;

export interface WebhookAccount {
  secret: string;
  signatureHeader: string;
  timestampHeader: string | null;
  toleranceSec: number;
  deliveryHeader: string | null;
  eventHeader: string;
  textField: string | null;
  replyUrl: string | null;
}

export interface SlackAccount {
  signingSecret: string;
  botToken: string;
  apiBaseUrl: string;
  toleranceSec: number;
}

export interface TelegramAccount {
  secretToken: string;
  botToken: string;
  apiBaseUrl: string;
}

export interface DiscordAccount {
  publicKey: string;
  applicationId: string;
  botToken: string | null;
  apiBaseUrl: string;
  toleranceSec: number;
}

/** The compiled `channels` section: defaults filled in, `{env}` secrets read when used. */
export interface ChannelSettings {
  webhook: Record<string, WebhookAccount>;
  slack: Record<string, SlackAccount>;
  telegram: Record<string, TelegramAccount>;
  discord: Record<string, DiscordAccount>;
  outbox: OutboxOptions;
  /** The `{env}` secrets whose variables are unset in this process (warned about at start-up). */
  unset?: FieldIssue[];
}

export const SLACK_API = 'https://slack.com/api';
export const TELEGRAM_API = 'https://api.telegram.org';
export const DISCORD_API = 'https://discord.com/api/v10';
export const DEFAULT_TOLERANCE_SEC = 300;

/**
 * Fills defaults and wires secrets. An inline secret is a plain field; an `{env}` one
 * is a getter that reads the variable when the secret is first used (verifying a
 * webhook, sending a reply) and throws SecretUnsetError, naming the field and the
 * variable, if it is unset: a process that never touches the channel (`spine mcp`,
 * `spine runs`) does not need it, and an unset one fails only that channel.
 * `unset` lists the variables unset now, for a warning at start-up.
 */
export function compileChannels(raw: ChannelsConfig | undefined, issues: FieldIssue[], env: NodeJS.ProcessEnv = process.env): ChannelSettings {
  const unset: FieldIssue[] = [];
  const resolve = (s: Secret, path: string): string => {
    if (typeof s === 'string') return s;
    const value = env[s.env];
    if (value === undefined || value === '') unset.push({ path, message: `environment variable ${s.env} is not set` });
    return '';
  };
  /** Replaces each `{env}` secret field of `account` with a getter that reads it when used. */
  const lazy = <A extends object>(account: A, fields: Array<[keyof A & string, Secret | undefined, string]>): A => {
    for (const [field, s, path] of fields) {
      if (s === undefined || typeof s === 'string') continue;
      Object.defineProperty(account, field, {
        enumerable: true,
        get: () => {
          const value = env[s.env];
          if (value === undefined || value === '') throw new SecretUnsetError(path, s.env);
          return value;
        },
      });
    }
    return account;
  };
  const base = (url: string | undefined, fallback: string) => (url ?? fallback).replace(/\/+$/, '');
  const each = <A, S>(p: { accounts: Record<string, A> } | undefined, name: string, fn: (a: A, path: string) => S): Record<string, S> => {
    const out: Record<string, S> = {};
    for (const [id, a] of Object.entries(p?.accounts ?? {})) out[id] = fn(a, `channels.${name}.accounts.${id}`);
    return out;
  };

  const telegram = each(raw?.telegram, 'telegram', (a, path) => {
    const secretToken = resolve(a.secretToken, `${path}.secretToken`);
    if (secretToken && !/^[A-Za-z0-9_-]{1,256}$/.test(secretToken)) {
      issues.push({ path: `${path}.secretToken`, message: 'Telegram secret tokens are 1–256 of A-Z a-z 0-9 _ -' });
    }
    const account = { secretToken, botToken: resolve(a.botToken, `${path}.botToken`), apiBaseUrl: base(a.apiBaseUrl, TELEGRAM_API) };
    return lazy(account, [['secretToken', a.secretToken, `${path}.secretToken`], ['botToken', a.botToken, `${path}.botToken`]]);
  });

  const { initialMs, maxMs, factor, jitter, ...rest } = raw?.outbox ?? {};
  const d = DEFAULT_OUTBOX.retry;
  const outbox: OutboxOptions = {
    ...DEFAULT_OUTBOX,
    ...rest,
    retry: { initialMs: initialMs ?? d.initialMs, maxMs: maxMs ?? d.maxMs, factor: factor ?? d.factor, jitter: jitter ?? d.jitter },
  };
  if (outbox.retry.maxMs < outbox.retry.initialMs) issues.push({ path: 'channels.outbox.maxMs', message: 'must be at least channels.outbox.initialMs' });

  return {
    webhook: each(raw?.webhook, 'webhook', (a, path) => lazy({
      secret: resolve(a.secret, `${path}.secret`),
      signatureHeader: a.signatureHeader ?? 'x-hub-signature-256',
      timestampHeader: a.timestampHeader ?? null,
      toleranceSec: a.toleranceSec ?? DEFAULT_TOLERANCE_SEC,
      deliveryHeader: a.deliveryHeader ?? null,
      eventHeader: a.eventHeader ?? 'x-github-event',
      textField: a.textField ?? null,
      replyUrl: a.replyUrl ?? null,
    }, [['secret', a.secret, `${path}.secret`]])),
    slack: each(raw?.slack, 'slack', (a, path) =>
      lazy(
        {
          signingSecret: resolve(a.signingSecret, `${path}.signingSecret`),
          botToken: resolve(a.botToken, `${path}.botToken`),
          apiBaseUrl: base(a.apiBaseUrl, SLACK_API),
          toleranceSec: a.toleranceSec ?? DEFAULT_TOLERANCE_SEC,
        },
        [['signingSecret', a.signingSecret, `${path}.signingSecret`], ['botToken', a.botToken, `${path}.botToken`]],
      ),
    ),
    telegram,
    discord: each(raw?.discord, 'discord', (a, path) =>
      lazy<DiscordAccount>(
        {
          publicKey: checkedKey(a.publicKey, `${path}.publicKey`, issues),
          applicationId: a.applicationId,
          botToken: a.botToken === undefined ? null : resolve(a.botToken, `${path}.botToken`),
          apiBaseUrl: base(a.apiBaseUrl, DISCORD_API),
          toleranceSec: a.toleranceSec ?? DEFAULT_TOLERANCE_SEC,
        },
        [['botToken', a.botToken, `${path}.botToken`]],
      ),
    ),
    outbox,
    unset,
  };
}

function checkedKey(hex: string, path: string, issues: FieldIssue[]): string {
  try {
    ed25519PublicKey(hex);
  } catch (err) {
    issues.push({ path, message: `not a usable Ed25519 public key (${err instanceof Error ? err.message : String(err)})` });
  }
  return hex.toLowerCase();
}
