// Preloaded by bench/export.ts into the command it measures: writes the
// process's own getrusage (peak RSS above all) to $TCPTRACE_RUSAGE_FILE at exit.
'use strict';
const { writeFileSync } = require('node:fs');
const file = process.env.TCPTRACE_RUSAGE_FILE;
if (file) process.on('exit', () => writeFileSync(file, JSON.stringify(process.resourceUsage())));
