#!/usr/bin/env node
// Entry point of the mamba-ts command: runs the compiled CLI (npm install builds it).
import '../dist/src/cli/bin.js';
