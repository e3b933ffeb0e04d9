#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm run build`).
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`backroll: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
