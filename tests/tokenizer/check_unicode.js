#!/usr/bin/env node
// check_unicode.js — engine/unicode.c's classes and single-code-point NFC against node's own
// Unicode support (V8's \p{L} / \p{N} / \s, ICU's String.prototype.normalize), for every
// code point assigned in the UCD our tables were generated from (DerivedAge.txt of Debian's
// unicode-data). Code points assigned later (node's Unicode is newer) are not compared: our
// tables cannot know them, and the test strings avoid them.
// Usage: node check_unicode.js PATH/TO/unicode_dump [UCD_DIR]
// Prints every difference and 'N passed, N failed'; exits 1 on any difference.
"use strict";
const fs = require("fs");
const { execFileSync } = require("child_process");

const dump = process.argv[2];
const ucd = process.argv[3] || process.env.FASTVLM_UCD_DIR || "/usr/share/unicode";
if (!dump) { console.error("usage: node check_unicode.js UNICODE_DUMP [UCD_DIR]"); process.exit(2); }

const assigned = new Uint8Array(0x110000);
let ageFile;
try { ageFile = fs.readFileSync(`${ucd}/DerivedAge.txt`, "utf8"); }
catch (e) { console.error(`cannot read ${ucd}/DerivedAge.txt: apt-get install unicode-data`); process.exit(1); }
for (const line of ageFile.split("\n")) {
  const m = /^([0-9A-F]+)(?:\.\.([0-9A-F]+))?\s*;/.exec(line);
  if (!m) continue;
  const lo = parseInt(m[1], 16), hi = m[2] ? parseInt(m[2], 16) : lo;
  for (let c = lo; c <= hi; c++) assigned[c] = 1;
}

const out = execFileSync(dump, { maxBuffer: 64 << 20 }).toString("latin1").split("\n");
const classes = out[0];
const nfc = new Map();
for (const line of out.slice(1)) {
  if (!line) continue;
  const [cp, rest] = line.split(":");
  nfc.set(parseInt(cp, 16), rest.trim().split(" ").map((x) => String.fromCodePoint(parseInt(x, 16))).join(""));
}

const L = /^\p{L}$/u, N = /^\p{N}$/u, S = /^\s$/u;
let passed = 0, failed = 0, compared = 0;
const fail = (msg) => { if (failed++ < 50) console.log(msg); };
for (let c = 0; c < 0x110000; c++) {
  if (c >= 0xD800 && c <= 0xDFFF) continue;
  // \s is a fixed list in ECMAScript, so it is compared for every code point.
  const ch = String.fromCodePoint(c);
  if (!assigned[c]) {
    const ours = +classes[c];
    if ((ours & 4) !== (S.test(ch) ? 4 : 0)) fail(`U+${c.toString(16)} (unassigned): \\s differs`);
    continue;
  }
  compared++;
  const want = (L.test(ch) ? 1 : 0) | (N.test(ch) ? 2 : 0) | (S.test(ch) ? 4 : 0);
  const ours = +classes[c];
  let ok = true;
  if (ours !== want) { ok = false; fail(`U+${c.toString(16).toUpperCase()}: class ours ${ours}, node ${want}`); }
  const n = nfc.has(c) ? nfc.get(c) : ch;
  const wantN = ch.normalize("NFC");
  if (n !== wantN) {
    ok = false;
    const hex = (s) => [...s].map((x) => x.codePointAt(0).toString(16).toUpperCase()).join(" ");
    fail(`U+${c.toString(16).toUpperCase()}: NFC ours ${hex(n)}, node ${hex(wantN)}`);
  }
  if (ok) passed++;
}
console.log(`compared ${compared} assigned code points (node Unicode ${process.versions.unicode}, ICU ${process.versions.icu})`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
