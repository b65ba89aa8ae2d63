#!/usr/bin/env node
// Entry point of the `spine` command. Spine runs its TypeScript sources directly,
// which needs Node 24 (type stripping, node:sqlite).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `spine: needs Node.js 24 or newer, but this is ${process.version}.\n` +
      `Run it through npm so the bundled Node 24 is used: \`npx spine …\` or \`npm run spine -- …\`.\n`,
  );
  process.exit(2);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
