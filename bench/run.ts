// `npm run bench [-- NAME…]`: runs benchmarks, prints a table per benchmark and then one JSON line.
// Never part of `npm test`.
import { renderTable } from '../cli/observe';
import { benchUpload } from './upload';
import { benchIngest } from './ingest';
import { benchCapture } from './capture';

const BENCHES: Record<string, () => Promise<Record<string, unknown>[]>> = {
  upload: () => benchUpload(),
  ingest: () => benchIngest(),
  capture: () => benchCapture(),
};

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((n) => !(n in BENCHES));
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(', ')}; choose from: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  const results: Record<string, Record<string, unknown>[]> = {};
  for (const name of asked.length ? asked : Object.keys(BENCHES)) {
    console.log(`\n== ${name}`);
    const rows = await BENCHES[name]();
    results[name] = rows;
    const header = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    console.log(renderTable(header, rows.map((r) => header.map((h) => (r[h] === undefined ? '' : String(r[h]))))));
  }
  console.log(JSON.stringify({ node: process.version, when: new Date().toISOString(), results }));
}

void main();
