/**
 * The A2A protocol versions Spine speaks, outbound (`kind: 'a2a'`) and inbound (the
 * gateway's A2A endpoints): 1.0, and 0.3 through the SDK's compat layer (docs/a2a.md,
 * "Versions and the A2A-Version header").
 */
export const A2A_VERSIONS = ['1.0', '0.3'] as const;

/** Whether a declared protocol version (`0.3.0`, `1.0`, `1.0.1`) is one Spine speaks. */
export function speaksA2aVersion(version: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version.trim());
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major === 1 || (major === 0 && minor === 3);
}
