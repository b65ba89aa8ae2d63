import { z } from 'zod';
import type { FieldIssue } from '../../core/errors.ts';

/** `schedules` in spine.config.json5: cron and one-shot `at` schedules that create envelopes. */
export const schedulesSchema = z.record(z.string(), z.unknown());

export type SchedulesConfig = z.infer<typeof schedulesSchema>;

export type ScheduleSettings = Record<string, unknown>;

export function compileSchedules(raw: SchedulesConfig | undefined, _issues: FieldIssue[]): ScheduleSettings {
  return raw ?? {};
}
