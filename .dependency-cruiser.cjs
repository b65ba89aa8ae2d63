// The dependency rings (docs/architecture.md), enforced by `npm run check:deps` in `npm test`.
// Dependencies point inward:
//   core            imports nothing of Spine's
//   ports           src/store/*.ts (the Store port and its sub-ports): core only
//   inner rooms     policy, contracts, routing, memory, synthesis, validation, audit: core, ports, each other
//   engine, intake  the inner rings
//   adapters        store backends, channels, agent kinds, tool sources, observability: inner rings only
//                   (plus config/fields.ts, the leaf of shared config field schemas)
//   outer           config, gateway, cli, runtime: anything; nothing imports cli, only cli imports runtime
// and nothing forms a cycle.
const INNER = '^src/(policy|contracts|routing|memory|synthesis|validation|audit)/';
const ENGINE = '^src/(engine|intake)/';
const ADAPTERS = '^src/(store/(sql|sqlite|postgres)|channels|agents|tools|observability)/';
const EDGE_ADAPTERS = '^src/(channels|agents|tools|observability)/';
const STORE_BACKENDS = '^src/store/(sql|sqlite|postgres)/';
const OUTER = '^src/(config|gateway|cli|runtime)/';
const PORTS = '^src/store/[^/]+\\.ts$';
const CONFIG_LEAF = '^src/config/fields\\.ts$';

module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'modules must not depend on each other in a circle', from: { path: '^src/' }, to: { circular: true } },
    { name: 'core-imports-nothing', severity: 'error', from: { path: '^src/core/' }, to: { path: '^src/', pathNot: '^src/core/' } },
    { name: 'ports-import-core', severity: 'error', from: { path: PORTS }, to: { path: '^src/', pathNot: `^src/core/|${PORTS}` } },
    { name: 'inner-rooms-import-inward', severity: 'error', from: { path: INNER }, to: { path: `${ENGINE}|${ADAPTERS}|${OUTER}` } },
    { name: 'engine-imports-inward', severity: 'error', from: { path: ENGINE }, to: { path: `${ADAPTERS}|${OUTER}` } },
    {
      name: 'adapters-import-inward',
      severity: 'error',
      comment: 'an adapter (channel, agent kind, tool source) uses inner rings only, not another room of adapters',
      from: { path: EDGE_ADAPTERS },
      to: { path: `${OUTER}|${ADAPTERS}`, pathNot: [CONFIG_LEAF, '^src/$1/'] },
    },
    {
      name: 'store-backends-import-inward',
      severity: 'error',
      comment: 'the SQLite and PostgreSQL backends share the portable SQL store (store/sql) and nothing else outside the inner rings',
      from: { path: STORE_BACKENDS },
      to: { path: `${OUTER}|${EDGE_ADAPTERS}` },
    },
    { name: 'config-leaf', severity: 'error', from: { path: CONFIG_LEAF }, to: { path: '^src/' } },
    { name: 'nothing-imports-cli', severity: 'error', from: { path: '^src/', pathNot: '^src/cli/' }, to: { path: '^src/cli/' } },
    { name: 'only-cli-imports-runtime', severity: 'error', from: { path: '^src/', pathNot: '^src/(cli|runtime)/' }, to: { path: '^src/runtime/' } },
    {
      name: 'gateway-app-not-node',
      severity: 'error',
      comment: 'the gateway app is Web Request → Response: the Node server, its WebSocket upgrade and node:http stay at the edge (gateway/server.ts), which injects them',
      from: { path: '^src/gateway/', pathNot: '^src/gateway/server\\.ts$' },
      to: { path: '^(node_modules/(@hono/node-server|ws)/|(node:)?(http|https|http2|net)$)', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'runtime-wires-adapters',
      severity: 'error',
      comment: 'adapters (channels, agent kinds, tool sources, store backends) are wired by the runtime alone; other rings may read their config schemas and types',
      from: { path: '^src/', pathNot: '^src/(runtime|channels|agents|tools|store)/' },
      to: { path: '^src/(channels|agents|tools|store/(sql|sqlite|postgres))/', pathNot: '/(schema|config|config-common|kind)\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    { name: 'gateway-not-config', severity: 'error', comment: 'the gateway is handed compiled settings; the config compiler (and every SDK it loads) stays out of it', from: { path: '^src/gateway/' }, to: { path: '^src/config/', pathNot: CONFIG_LEAF } },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(test|bench|examples)/' },
  },
};
