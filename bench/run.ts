// `npm run bench [-- NAME…] [--sizes 32,128] [--rows N] [--tenants 100,1000] [--repeats N] [--quick]`: runs the
// benchmarks, each beside its reference measured in the same run, prints a table per benchmark and
// then one JSON line with every row and the ratios. Never part of `npm test`.
import { renderTable } from '../cli/observe';
import { benchUpload } from './upload';
import { benchDownload } from './download';
import { benchVerify } from './verify';
import { benchOrchestration } from './orchestration';
import { benchIngest } from './ingest';
import { benchCapture } from './capture';
import { benchWarRoom } from './war-room';
import type { BenchResult } from './measure';

interface Settings {
  sizesMiB: number[];
  rows: number;
  chunkRows: number;
  tenants: number[];
  concurrency: number;
  repeats: number;
}

const FULL: Settings = { sizesMiB: [32, 128, 512, 1024, 2048], rows: 1_000_000, chunkRows: 2000, tenants: [100, 1000], concurrency: 10, repeats: 3 };
const QUICK: Settings = { sizesMiB: [32, 256], rows: 200_000, chunkRows: 2000, tenants: [20], concurrency: 10, repeats: 1 };

const BENCHES: Record<string, (s: Settings) => Promise<BenchResult>> = {
  upload: (s) => benchUpload(s.sizesMiB, s.repeats),
  download: (s) => benchDownload(s.sizesMiB, s.repeats),
  verify: (s) => benchVerify(s.rows, s.chunkRows),
  orchestration: (s) => benchOrchestration(s.tenants, s.concurrency),
  ingest: () => benchIngest(),
  'war-room': async () => ({ rows: await benchWarRoom(), ratios: {} }),
  capture: async () => {
    const rows = await benchCapture();
    return { rows, ratios: { captureWriteCost: Number(rows[1].costX) } };
  },
};

const USAGE = `usage: npm run bench -- [${Object.keys(BENCHES).join('|')} …] [--quick] [--sizes 32,128,2048] [--rows 1000000] [--chunk-rows 2000] [--tenants 100,1000] [--concurrency 10] [--repeats 3]`;

function refuse(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function numbers(flag: string, value: string | undefined): number[] {
  const list = (value ?? '').split(',').map(Number);
  if (!value || list.some((n) => !Number.isInteger(n) || n < 1)) refuse(`${flag}: give positive whole numbers separated by commas, e.g. ${flag} 32,128`);
  return list;
}

function parse(argv: string[]): { names: string[]; settings: Settings } {
  const names: string[] = [];
  let settings = { ...FULL };
  const given: Partial<Settings> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--debug') continue;
    else if (arg === '--quick') settings = { ...QUICK };
    else if (arg === '--sizes') given.sizesMiB = numbers(arg, argv[++i]);
    else if (arg === '--rows') given.rows = numbers(arg, argv[++i])[0];
    else if (arg === '--chunk-rows') given.chunkRows = numbers(arg, argv[++i])[0];
    else if (arg === '--tenants') given.tenants = numbers(arg, argv[++i]);
    else if (arg === '--concurrency') given.concurrency = numbers(arg, argv[++i])[0];
    else if (arg === '--repeats') given.repeats = numbers(arg, argv[++i])[0];
    else if (arg.startsWith('-')) refuse(`unknown option ${arg}`);
    else if (!(arg in BENCHES)) refuse(`unknown benchmark ${arg}; choose from: ${Object.keys(BENCHES).join(', ')}`);
    else names.push(arg);
  }
  return { names: names.length ? names : Object.keys(BENCHES), settings: { ...settings, ...given } };
}

async function main(): Promise<void> {
  const { names, settings } = parse(process.argv.slice(2));
  const results: Record<string, Record<string, unknown>[]> = {};
  const ratios: Record<string, number> = {};
  for (const name of names) {
    console.log(`\n== ${name}`);
    const result = await BENCHES[name](settings);
    results[name] = result.rows;
    Object.assign(ratios, result.ratios);
    const header = [...new Set(result.rows.flatMap((r) => Object.keys(r)))];
    console.log(renderTable(header, result.rows.map((r) => header.map((h) => (r[h] === undefined ? '' : String(r[h]))))));
  }
  console.log(JSON.stringify({ node: process.version, when: new Date().toISOString(), settings, ratios, results }));
}

main().catch((err: unknown) => {
  console.error(process.argv.includes('--debug') ? err : `bench failed: ${(err as Error).message ?? String(err)}`);
  process.exit(1);
});
