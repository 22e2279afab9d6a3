// Azurite's blob service without its periodic extent sweep, for the test session.
//
//   node azurite_nogc.js <azurite-blob main.js> [azurite options...]
//
// Azurite sweeps unreferenced extents every 10 minutes, and removing each one rescans its
// in-memory index: about n^2 work that blocks the server's only thread. Measured with Azurite
// 3.37: 8,000 blobs written and their containers deleted, the first sweep held every request
// for 87 s. The suite writes thousands of blobs, so one sweep in the middle of a run timed out
// Azure tests. A test server lives minutes and keeps its blobs in memory, so it never sweeps:
// the interval is set to setTimeout's longest (about 24 days), after the startup pass, which
// finds nothing to remove. Everything else is Azurite's own main.
"use strict";
const fs = require("fs");
const path = require("path");

const main = fs.realpathSync(process.argv[2]);
require(path.join(path.dirname(main), "utils", "constants.js")).DEFAULT_GC_INTERVAL_MS = 2 ** 31 - 1;
process.argv.splice(1, 2, main); // Azurite reads its options after [node, script]
require(main);
