import { statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A config file, or a module it names (function agents, tools), runs as Spine's user:
 * anyone who can change it can run code. As ssh does, such a file is refused when it
 * or its folder is writable by group or others (a sticky folder such as /tmp still
 * lets others create files, so it counts too). `--allow-insecure-files` (or
 * SPINE_ALLOW_INSECURE_FILES=1) turns the check off for development.
 */
export const INSECURE_OVERRIDE_ENV = 'SPINE_ALLOW_INSECURE_FILES';

/** Why a file may not be trusted, or null when it may. Missing files are not this check's business. */
export function insecureFileReason(file: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (process.platform === 'win32' || env[INSECURE_OVERRIDE_ENV] === '1') return null;
  for (const [what, path] of [
    ['file', file],
    ['folder', dirname(file)],
  ] as const) {
    let mode: number;
    try {
      mode = statSync(path).mode;
    } catch {
      return null;
    }
    if ((mode & 0o022) !== 0) {
      const who = mode & 0o002 ? 'everyone' : 'its group';
      return `${what} ${path} is writable by ${who} (mode ${(mode & 0o7777).toString(8).padStart(4, '0')}), so anyone there could make Spine run their code; run \`chmod go-w ${path}\`, or pass --allow-insecure-files (${INSECURE_OVERRIDE_ENV}=1) for development`;
    }
  }
  return null;
}
