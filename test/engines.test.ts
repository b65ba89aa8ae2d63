// `npm install` and the README agree on the Node a newcomer needs (issue 17): the
// minimum in package.json's `engines` satisfies every installed package's own
// `engines.node` (so npm prints no EBADENGINE at that version), and the README states it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

type Version = [number, number, number];

function parse(v: string): Version {
  const [a = 0, b = 0, c = 0] = v.replace(/^v/, '').split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : 0));
  return [a, b, c];
}

function cmp(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** The subset of semver ranges the lock file uses: `||`, `>=`, `^`, `x`-ranges and bare versions. */
function satisfies(v: Version, range: string): boolean {
  return range.split('||').some((part) =>
    part
      .trim()
      .replace(/(>=|\^)\s+/g, '$1')
      .split(/\s+/)
      .every((c) => {
        if (c.startsWith('>=')) return cmp(v, parse(c.slice(2).replace(/\.?[x*]/g, ''))) >= 0;
        if (c.startsWith('^')) {
          const min = parse(c.slice(1));
          return cmp(v, min) >= 0 && (min[0] > 0 ? v[0] === min[0] : v[1] === min[1]);
        }
        const fixed = c.replace(/\.?[x*]/g, '').split('.');
        return fixed.every((p, i) => Number(p) === v[i]);
      }),
  );
}

test('the engines minimum satisfies every installed package, and the README says it', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
  const m = /^>=(\d+\.\d+(?:\.\d+)?)$/.exec(pkg.engines.node);
  assert.ok(m, `engines.node is a plain minimum: ${pkg.engines.node}`);
  const min = parse(m[1]!);
  const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[]; optional?: boolean }> };
  const unmet = Object.entries(lock.packages)
    .filter(([name, p]) => name !== '' && !p.optional && !Array.isArray(p.engines) && p.engines?.node)
    .filter(([, p]) => !satisfies(min, (p.engines as { node: string }).node))
    .map(([name, p]) => `${name} wants ${(p.engines as { node: string }).node}`);
  assert.deepEqual(unmet, [], `npm would warn EBADENGINE at Node ${m[1]}`);
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.match(readme, new RegExp(`Node\\.js ${m[1]!.replace('.', '\\.')} or newer`), 'the README names the same minimum');
  // The sanity of the little range checker itself.
  assert.equal(satisfies([22, 13, 0], '^20.19.0 || ^22.13.0 || >=24'), true);
  assert.equal(satisfies([22, 12, 0], '^20.19.0 || ^22.13.0 || >=24'), false);
  assert.equal(satisfies([20, 20, 2], '^22||^24||>=26'), false);
});
