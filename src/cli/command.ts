/** What a command returns to main: what to print on stdout, and the exit code (default 0). */
export interface CommandResult {
  stdout?: string;
  exitCode?: number;
}

export type Command = (argv: string[]) => Promise<CommandResult>;
