// The plain-JS SHA-256 that pages without Web Crypto (plain http from another host) use, on files:
// prints {path: hex digest} as JSON. tests/test_web.py compares it with Python's hashlib.
//
//   node web/test/sha256_check.mjs FILE...
import { readFileSync } from 'node:fs';
import { sha256Fallback } from '../src/sha256.js';

const out = {};
for (const path of process.argv.slice(2)) out[path] = sha256Fallback(new Uint8Array(readFileSync(path)));
console.log(JSON.stringify(out));
