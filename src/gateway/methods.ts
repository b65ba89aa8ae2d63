/**
 * Which methods a path is served with, for the 405 that answers a wrong method on an
 * existing path (with `Allow`). Read from the app's routes, so it cannot drift.
 */

const cache = new WeakMap<readonly unknown[], Array<{ pattern: RegExp; method: string }>>();

function compile(routes: ReadonlyArray<{ method: string; path: string }>): Array<{ pattern: RegExp; method: string }> {
  return routes
    .filter((r) => r.method !== 'ALL')
    .map((r) => ({
      method: r.method,
      pattern: new RegExp(`^${r.path.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}/?$`),
    }));
}

/** The methods `path` is served with (GET implies HEAD), or none when no route has this path. */
export function allowedMethods(routes: ReadonlyArray<{ method: string; path: string }>, path: string): string[] {
  let compiled = cache.get(routes);
  if (!compiled) {
    compiled = compile(routes);
    cache.set(routes, compiled);
  }
  const methods = new Set(compiled.filter((r) => r.pattern.test(path)).map((r) => r.method));
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods];
}
