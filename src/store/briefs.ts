import type { Brief, BriefState } from '../core/brief.ts';

export type { Brief, BriefState };

export interface BriefFilter {
  runId?: string;
  state?: BriefState;
  /** Only briefs with an id before this one (newest-first paging). */
  before?: string;
  limit: number;
}
