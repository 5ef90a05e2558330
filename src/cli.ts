/**
 * The tcptrace command line: assembles one commander file per subcommand
 * (src/commands/*) and maps errors to exit codes. Nothing else exits.
 */
import { Command, CommanderError } from 'commander';
import { BpfError, EXIT, EXIT_HELP, UsageError, exitCodeFor } from './errors.js';
import { logger, setLogLevel } from './log.js';
import { agentCommand } from './commands/agent.js';
import { demoCommand } from './commands/demo.js';
import { featuresCommand } from './commands/features.js';
import { doctorCommand } from './commands/doctor.js';
import { exportCommand } from './commands/export.js';
import { recordCommand } from './commands/record.js';
import { reportCommand } from './commands/report.js';
import { traceCommand } from './commands/trace.js';
import { addVersionOptions, answerVersion } from './commands/version.js';

const program = new Command('tcptrace')
  .description(
    'Follow every TCP socket of a process through its state transitions, and find the code path ' +
      'that leaves sockets in CLOSE_WAIT (the peer closed; the program never called close()).',
  )
  .option('--log-level <level>', 'stderr log level: trace, debug, info, warn, error, silent', 'warn')
  .hook('preAction', (cmd) => setLogLevel(cmd.optsWithGlobals().logLevel ?? 'warn'))
  .addHelpText('after', `\n${EXIT_HELP}`)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();
addVersionOptions(program);

program.addCommand(traceCommand(), { isDefault: true });
program.addCommand(recordCommand());
program.addCommand(agentCommand());
program.addCommand(reportCommand());
program.addCommand(exportCommand());
program.addCommand(featuresCommand());
program.addCommand(demoCommand());
program.addCommand(doctorCommand());

// Subcommands added with addCommand() do not inherit these settings.
for (const sub of program.commands) sub.exitOverride().showHelpAfterError('(run with --help for usage)');

// `tcptrace ... | head`: a closed pipe ends the output, it is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.OK);
  throw err;
});

export async function main(argv: string[]): Promise<number> {
  try {
    if (answerVersion(argv.slice(2))) return EXIT.OK;
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (err) {
    return handleError(err);
  }
}

function handleError(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return EXIT.OK;
    return EXIT.USAGE; // commander already printed the one-line message
  }
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`tcptrace: ${msg}\n`);
  if (err instanceof BpfError && err.log) {
    logger('cli').debug({ op: err.op, log: err.log }, 'libbpf / verifier log');
  } else if (!(err instanceof UsageError) && err instanceof Error && exitCodeFor(err) === EXIT.FAILURE) {
    logger('cli').debug({ err }, 'stack');
  }
  return exitCodeFor(err);
}

const code = await main(process.argv);
process.exitCode = code;
