// Process entry of the mamba-ts command (bin/mamba-ts.js runs the compiled copy of this file).

import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
