import type { ChannelAdapter } from '../core/channel.ts';
import type { ChannelSettings } from './config.ts';
import { DiscordChannel } from './discord.ts';
import { SlackChannel } from './slack.ts';
import { TelegramChannel } from './telegram.ts';
import { WebhookChannel } from './webhook.ts';

/**
 * The channel adapters of a compiled config, by channel name: the gateway routes
 * `POST /v1/channels/<channel>/<account>` to `get(channel).receive(…)`, and the
 * outbox dispatcher sends items through `get(item.channel).send(…)`. A platform
 * with no configured account has no adapter (its URL is an unknown channel).
 */
export function createChannels(settings: ChannelSettings): ReadonlyMap<string, ChannelAdapter> {
  const out = new Map<string, ChannelAdapter>();
  if (Object.keys(settings.webhook).length > 0) out.set('webhook', new WebhookChannel(settings.webhook));
  if (Object.keys(settings.slack).length > 0) out.set('slack', new SlackChannel(settings.slack));
  if (Object.keys(settings.telegram).length > 0) out.set('telegram', new TelegramChannel(settings.telegram));
  if (Object.keys(settings.discord).length > 0) out.set('discord', new DiscordChannel(settings.discord));
  return out;
}

export { UnauthorizedRequestError, BadChannelRequestError } from '../core/errors.ts';
export type { ChannelAdapter, InboundRequest, InboundResult, SendResult } from '../core/channel.ts';
export { compileChannels, channelsSchema, type ChannelSettings, type ChannelsConfig } from './config.ts';
export { DiscordChannel } from './discord.ts';
export { SlackChannel } from './slack.ts';
export { TelegramChannel } from './telegram.ts';
export { WebhookChannel } from './webhook.ts';
