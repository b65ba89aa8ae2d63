/**
 * Action patterns name what a rule or grant covers: `tool:crm.*`, `handoff:finance`,
 * `deliver:slack:*`, `turn:*`. `*` matches any run of characters, so `crm.*` covers
 * the whole `crm` namespace. A pattern without a `kind:` prefix matches tools.
 */
export type Matcher = (subject: string) => boolean;

const cache = new Map<string, RegExp>();

export function globToRegExp(glob: string): RegExp {
  let re = cache.get(glob);
  if (!re) {
    re = new RegExp('^' + glob.split('*').map(escape).join('.*') + '$');
    cache.set(glob, re);
  }
  return re;
}

function escape(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

export function matches(glob: string, subject: string): boolean {
  return glob === '*' || glob === subject || globToRegExp(glob).test(subject);
}

export function anyMatch(globs: readonly string[], subject: string): boolean {
  for (const g of globs) if (matches(g, subject)) return true;
  return false;
}

/** `email.send` → `tool:email.send`; patterns already carrying a kind are kept. */
export function qualifyAction(pattern: string): string {
  return /^[a-z]+:/.test(pattern) ? pattern : `tool:${pattern}`;
}

/** The action string a crossing is matched by. */
export function actionString(kind: string, name: string): string {
  return `${kind}:${name}`;
}
