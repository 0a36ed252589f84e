// Differential check of the dashboard's metadata decoder against the Rust
// one: reads the JSON lines the `meta` fuzz target writes when MADO_META_DIFF
// is set ({hex, unit, obu}: the Rust verdicts as canonical JSON), decodes
// each input with appliance/web/meta.js, and reports every disagreement.
// Usage: node fuzz/meta_diff.mjs LOG
import { readFileSync } from 'node:fs';
import { findInTemporalUnit, parseMetadataObu, MetaError } from '../appliance/web/meta.js';

function canonical(v) {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
}

function verdict(decode, bytes) {
  try {
    return canonical({ meta: decode(bytes) });
  } catch (e) {
    if (!(e instanceof MetaError)) return canonical({ thrown: String(e) });
    return canonical({ error: e.code });
  }
}

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
const seen = new Set();
let mismatches = 0;
for (const line of lines) {
  const { hex, unit, obu } = JSON.parse(line);
  if (seen.has(hex)) continue;
  seen.add(hex);
  const bytes = Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  for (const [what, rust, decode] of [
    ['unit', unit, findInTemporalUnit],
    ['obu', obu, parseMetadataObu],
  ]) {
    const js = verdict(decode, bytes);
    if (js !== rust) {
      mismatches++;
      if (mismatches <= 10) console.error(`${what} ${hex}\n  rust: ${rust}\n  js:   ${js}`);
    }
  }
}
console.log(`meta differential: ${seen.size} inputs, ${mismatches} disagreements`);
process.exit(mismatches === 0 ? 0 : 1);
