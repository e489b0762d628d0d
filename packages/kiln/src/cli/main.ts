import { KilnError } from '@kiln/ir';
import { Command } from 'commander';
import { coordinatorCommand } from './coordinator-command.js';
import { jobCommands } from './jobs-commands.js';
import { workerCommand } from './worker-command.js';

/** The `kiln` command. commander parses and explains the options; each subcommand is a file. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('kiln')
    .description('kiln: a tensor dataflow executor')
    .showHelpAfterError()
    .addCommand(coordinatorCommand())
    .addCommand(workerCommand());
  for (const command of jobCommands()) program.addCommand(command);
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    // Errors kiln raises on purpose say what was wrong; anything else is a bug worth its stack.
    if (e instanceof KilnError) {
      console.error(`kiln: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}
