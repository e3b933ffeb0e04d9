#!/usr/bin/env node
// JavaScript a browser downloads on a first visit of a route: the entry chunk, the route's
// chunk, and every chunk they import statically (what Vite preloads), gzip-compressed.
// Usage: node scripts/bundle-size.mjs [route view, default src/views/dashboard/DashboardView.vue]
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dist = path.resolve(import.meta.dirname, '../dist');
const manifest = JSON.parse(fs.readFileSync(path.join(dist, '.vite/manifest.json'), 'utf8'));
const view = process.argv[2] ?? 'src/views/dashboard/DashboardView.vue';
const entry = Object.keys(manifest).find((k) => manifest[k].isEntry);

const seen = new Set();
function walk(key) {
  if (seen.has(key) || !manifest[key]) return;
  seen.add(key);
  for (const i of manifest[key].imports ?? []) walk(i);
}
walk(entry);
walk(view);
let raw = 0;
let gz = 0;
const rows = [];
for (const key of seen) {
  const file = manifest[key].file;
  if (!file.endsWith('.js')) continue;
  const buf = fs.readFileSync(path.join(dist, file));
  const g = zlib.gzipSync(buf, { level: 9 }).length;
  raw += buf.length;
  gz += g;
  rows.push(`${file.padEnd(48)} ${(buf.length / 1024).toFixed(1).padStart(8)} KiB  ${(g / 1024).toFixed(1).padStart(7)} KiB gzip`);
}
console.log(rows.join('\n'));
console.log(`first load of ${view}: ${(raw / 1024).toFixed(1)} KiB JavaScript, ${(gz / 1024).toFixed(1)} KiB gzip (${(gz / 1000).toFixed(1)} kB)`);
