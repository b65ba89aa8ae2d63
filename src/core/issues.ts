
/**
 * Validation issues in one form: `{path, message}` per bad field, whatever found
 * them (zod for config and requests, ajv for contracts, the turn protocol).
 */

/** One field of a config, payload or argument that failed validation. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** The part of a zod issue we read; structural, so core needs no zod import. */
interface ZodLikeIssue {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  keys?: readonly string[];
  expected?: string;
  issues?: readonly ZodLikeIssue[];
}

/** zod's issues as field issues: unknown keys one per key, record-key failures with the key's own message, missing fields as "required". */
export function zodIssues(error: { issues: readonly ZodLikeIssue[] }, prefix: PropertyKey[] = []): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of error.issues) {
    const segments = [...prefix, ...issue.path];
    const path = segments.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys ?? []) out.push({ path: path ? `${path}.${key}` : key, message: 'unknown setting' });
    } else if (issue.code === 'invalid_key' && issue.issues) {
      // A record key that fails its pattern: report the key's own message.
      out.push(...zodIssues({ issues: issue.issues }, segments));
    } else if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
      out.push({ path, message: `required (${issue.expected})` });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

/** `a.b: message; c: message` — one line naming every bad field. */
export function formatIssues(issues: readonly FieldIssue[], root = '(root)'): string {
  return issues.map((i) => `${i.path || root}: ${i.message}`).join('; ');
}
