import { z } from 'zod';
import type { FieldIssue } from '../../core/errors.ts';

/** `channels` in spine.config.json5: per platform, per account, its secrets and API base URL. */
export const channelsSchema = z.strictObject({}).catchall(z.unknown());

export type ChannelsConfig = z.infer<typeof channelsSchema>;

export type ChannelSettings = Record<string, unknown>;

export function compileChannels(raw: ChannelsConfig | undefined, _issues: FieldIssue[]): ChannelSettings {
  return raw ?? {};
}
