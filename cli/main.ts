// The operator CLI. Every command that talks to Temporal uses the shared contract.
import { Command, InvalidArgumentError } from 'commander';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { findTenant, loadFleet } from '../config/fleet';
import { planCommand } from './plan';
import { redactSecrets } from '../azure/blob-store';
import {
  pauseUpdate,
  resumeUpdate,
  rollbackUpdate,
  abortSignal,
  approveCutoverUpdate,
  tenantWorkflowId,
  waveWorkflowId,
  SAFE_NAME,
} from '../workflows/contract';
import { isDomainError } from '../protocol/errors';
import { createAirliftWorker } from '../workers/worker';
import { connectClient, connectWorker, devStateFile, lookBesideFleet, readDevState, storageEnv, temporalSettings, type DevState } from './connect';
import { reconcileFleet, type TemporalAccess } from './reconcile';
import { renderReport } from '../protocol/reconcile';
import { runDemo } from './demo';
import { DEMO_SIDES } from './demo-sides';
import { formatDuration, noteOf, observeTenant, observeWave, phaseCounts, phaseText, renderTenants } from './observe';
import { runningTenant, runningWave, sendUpdate, whereIsTenant } from './steer';
import { rememberWarRoomPort, startEmbeddedStack } from './stack';
import { createGateway, listenGateway } from '../ingestion/gateway';
import { ensureTemporalCli, findTemporalCli } from './temporal-cli';
import { ensureChromium, ensurePostgres, SetupError } from './setup';
import { listWaves, OperatorError, previousWave, renderWaves, startWave, summarize, watchWave } from './waves';
import { chooseTenants } from './wave-choice';
import { serveWarRoom } from './war-room';
import { commandTenant } from './operator';

Runtime.install({ logger: new DefaultLogger((process.env.AIRLIFT_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN') });

const positiveInt = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a whole number of at least 1, got "${value}"`);
  return n;
};

const nonNegativeInt = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`${what} must be a port number (0 to 65535), got "${value}"`);
  return n;
};

const safeName = (what: string) => (value: string) => {
  if (!SAFE_NAME.test(value)) throw new InvalidArgumentError(`${what} "${value}" may hold only letters, digits, _ and -`);
  return value;
};

async function withClient<T>(fn: (client: Client, address: string) => Promise<T>): Promise<T> {
  const { client, settings, close } = await connectClient();
  try {
    return await fn(client, settings.address);
  } finally {
    await close();
  }
}


const program = new Command()
  .name('airlift')
  .description('Migrate every tenant of a multi-tenant SaaS to Azure, one durable Temporal workflow per tenant.')
  .option('--debug', 'print the stack trace of an unexpected error')
  .showHelpAfterError()
  // A command given a fleet file finds the stack `airlift dev -f` keeps beside it, wherever it runs.
  .hook('preAction', (_program, command) => {
    const fleet = command.opts().fleet;
    if (typeof fleet === 'string') lookBesideFleet(fleet);
  });

program
  .command('demo')
  .description('run a whole wave on the embedded default: Temporal dev server, Azurite and SQLite tenants (or PostgreSQL ones on private clusters)')
  .option('--engine <engine>', `what the tenants live on: ${Object.keys(DEMO_SIDES).join(' or ')}`, 'sqlite')
  .option('--tenants <n>', 'how many tenants', positiveInt('--tenants'), 5)
  .option('--rows <n>', 'tracking events per tenant', positiveInt('--rows'), 20000)
  .option('--concurrency <n>', 'tenants migrating at once', positiveInt('--concurrency'), 3)
  .option('--json', 'end with one JSON summary line on stdout', false)
  .option('--keep', 'keep the working folder (databases, fleet file) afterwards', false)
  .option('--load <eventsPerSecond>', 'drive live tracking through the gateway for the whole wave', positiveInt('--load'))
  .option('--rollback <tenant>', 'roll this tenant back after its cut-over, in its rollback window')
  .option('--screenshot <file>', 'save a PNG of the war-room page at the end (needs Chromium: apt-get install chromium)')
  .action(async (o) => {
    const summary = await runDemo(o);
    process.exitCode = summary.failed || summary.mismatches ? 1 : 0;
  });

program
  .command('setup')
  .description('make sure the demo and the tests can run: builds the Temporal CLI with Go when missing, installs Debian\'s Chromium (as root with apt-get) for the war-room browser tests, or says what to run')
  .option('--quiet', 'print only what is being done', false)
  .option('--dry-run', 'say what would be installed, install nothing', false)
  .action((o) => {
    const log = (line: string) => console.log(line);
    const path = o.dryRun ? findTemporalCli() : ensureTemporalCli(log);
    if (!o.quiet || (o.dryRun && !path)) console.log(path ? `Temporal CLI: ${path}` : o.dryRun ? 'Temporal CLI: would be built with Go (or downloaded by the SDK)' : 'Temporal CLI: the SDK will download it on first use');
    const chromium = ensureChromium(log, { dryRun: o.dryRun });
    if (!o.quiet && chromium) console.log(`Chromium: ${chromium}`);
    const postgres = ensurePostgres(log, { dryRun: o.dryRun });
    if (!o.quiet && postgres) console.log(`PostgreSQL programs: ${postgres}`);
  });

program
  .command('dev')
  .description('start the embedded stack and keep it up (with a worker when -f is given) until Ctrl-C; its state outlives it, so a restart (even after a SIGKILL) resumes every wave')
  .option('-f, --fleet <file>', 'also run a worker for this fleet file; the state is kept in .airlift/stack beside it')
  .option('--war-room-port <n>', 'the war-room page\'s port (default: the one it had last time, else 8090; 0: any free port)', nonNegativeInt('--war-room-port'))
  .action(async (o) => {
    const fleet = o.fleet ? loadFleet(o.fleet) : undefined;
    const home = resolve(fleet ? dirname(fleet.file) : '.');
    const stateDir = join(home, '.airlift', 'stack');
    const stack = await startEmbeddedStack({ ui: true, log: (l) => console.log(l), stateDir });
    console.log(stack.resumed
      ? `Resumed the stack kept in ${stateDir}, on the ports it had: every wave goes on where it was.`
      : `State kept in ${stateDir} (Temporal's history, the blobs): a restart resumes every wave; delete it to start afresh.`);
    const warRoom = await serveWarRoom(stack.temporal.client, { fleet, temporalUiUrl: stack.uiUrl, namespace: stack.namespace, port: o.warRoomPort ?? stack.warRoomPort ?? 8090, portOption: '--war-room-port' }).catch(async (err) => {
      await stack.close();
      throw err;
    });
    rememberWarRoomPort(stateDir, Number(new URL(warRoom.url).port));
    const state: DevState = { address: stack.address, namespace: stack.namespace, uiUrl: stack.uiUrl, warRoomUrl: warRoom.url, pid: process.pid, azuritePort: stack.azurite.port, stateDir, fleet: fleet?.file };
    const stateFile = devStateFile(home);
    mkdirSync(dirname(stateFile), { recursive: true });
    writeFileSync(stateFile, JSON.stringify(state, null, 2));
    console.log(`Temporal: ${stack.address}   Web UI: ${stack.uiUrl}   War room: ${warRoom.url}${warRoom.readOnlyBecause ? ` (read-only: ${warRoom.readOnlyBecause})` : ''}`);
    console.log(`Blob storage (Azurite): port ${stack.azurite.port}. For a worker in another shell:`);
    console.log(`  export TEMPORAL_ADDRESS=${stack.address}`);
    console.log(`  export AIRLIFT_STORAGE_CONNECTION_STRING='${stack.azurite.connectionString}'`);
    console.log(`Other airlift commands find this stack by themselves (run in ${home}, or given -f ${fleet ? fleet.file : 'a fleet file there'}). Ctrl-C stops it; running it again resumes it.`);
    let worker: Awaited<ReturnType<typeof createAirliftWorker>> | undefined;
    if (fleet) {
      if (fleet.storage.connectionStringEnv) process.env[fleet.storage.connectionStringEnv] ??= stack.azurite.connectionString;
      worker = await createAirliftWorker({ connection: stack.temporal.nativeConnection, namespace: stack.namespace, fleet });
      console.log(`worker running for ${fleet.file}`);
    }
    const stop = () => worker?.worker.shutdown();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (worker) await worker.worker.run();
    else await new Promise<void>((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
    worker?.close();
    await warRoom.stop();
    rmSync(stateFile, { force: true });
    await stack.close();
  });

program
  .command('ui')
  .description('serve the war-room page: every tenant of the fleet live, with the operator\'s controls behind the admin token')
  .requiredOption('-f, --fleet <file>', 'fleet file (YAML or JSON)')
  .option('--port <n>', 'port to listen on', positiveInt('--port'), 8090)
  .option('--host <ip>', 'address to listen on', '127.0.0.1')
  .option('--temporal-ui <url>', 'the Temporal Web UI, for a link to each workflow (default: the one `airlift dev` runs here)')
  .action(async (o) => {
    const fleet = loadFleet(o.fleet);
    await withClient(async (client) => {
      const dev = readDevState();
      const served = await serveWarRoom(client, { fleet, port: o.port, host: o.host, temporalUiUrl: o.temporalUi ?? dev?.uiUrl, namespace: temporalSettings().namespace });
      console.log(`war room: ${served.url}${served.readOnlyBecause ? ` (read-only: ${served.readOnlyBecause})` : ''}; Ctrl-C stops it`);
      await new Promise<void>((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
      await served.stop();
    });
  });

program
  .command('worker')
  .description('run an airlift worker for a fleet file against TEMPORAL_ADDRESS')
  .requiredOption('-f, --fleet <file>', 'fleet file (YAML or JSON)')
  .option('--task-queue <name>', 'task queue to poll', 'airlift')
  .action(async (o) => {
    const fleet = loadFleet(o.fleet);
    const { connection, settings } = await connectWorker();
    const { worker, close } = await createAirliftWorker({ connection, namespace: settings.namespace, fleet, taskQueue: o.taskQueue });
    console.log(`airlift worker: ${fleet.tenants.length} tenants in ${fleet.file}; Temporal ${settings.address}, task queue ${o.taskQueue}`);
    process.once('SIGINT', () => worker.shutdown());
    process.once('SIGTERM', () => worker.shutdown());
    await worker.run();
    close();
    await connection.close();
  });

const wave = program.command('wave').description('start and steer waves of tenants');
wave
  .command('start')
  .description('start a wave of tenant migrations from a fleet file')
  .requiredOption('-f, --fleet <file>', 'fleet file (YAML or JSON)')
  .option('--tenants <ids>', 'comma-separated tenant ids (default: every tenant in the file not already on its target, running elsewhere, or rolled back by an operator)')
  .option('--concurrency <n>', 'tenants migrating at once (default: policy.concurrency)', positiveInt('--concurrency'))
  .option('--wave <id>', 'wave id (default: a timestamp); a wave id runs once', safeName('--wave'))
  .option('--rerun', 'start a wave id that already ran again: only its tenants that did not finish (the ones it rolled back only when named with --tenants)', false)
  .option('--watch', 'stay and show progress until the wave ends', false)
  .action(async (o) => {
    const fleet = loadFleet(o.fleet);
    const known = new Set(fleet.tenants.map((t) => t.id));
    const named: string[] | undefined = o.tenants ? String(o.tenants).split(',').map((s: string) => s.trim()).filter(Boolean) : undefined;
    const unknown = (named ?? []).filter((t) => !known.has(t));
    if (unknown.length) throw new OperatorError(`--tenants: ${unknown.join(', ')} not in ${fleet.file}; known tenants: ${[...known].join(', ')}`);
    const waveId = o.wave ?? `w${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`;
    const policy = { ...fleet.policy, concurrency: o.concurrency ?? fleet.policy.concurrency };
    await withClient(async (client) => {
      const previous = await previousWave(client, waveId);
      if (previous && !o.rerun)
        throw new OperatorError(`wave ${waveId} already ran (${previous.summary}); a wave id runs once: choose another --wave id, or start it again with --rerun (only its tenants that did not finish start; the ones it rolled back only when named with --tenants)`);
      if (previous && !previous.status && !named)
        throw new OperatorError(`wave ${waveId} --rerun: the earlier run's tenants cannot be read (${previous.summary}); name the tenants to start with --tenants`);
      const choice = await chooseTenants(client, { fleetTenants: [...known], named, rerunOf: previous?.status, fleetFile: fleet.file });
      for (const s of choice.skipped) console.log(`skipped ${s.tenantId}: ${s.why}`);
      for (const s of choice.again) console.log(`migrating ${s.tenantId} again, since --tenants names it: ${s.why}`);
      const tenants = choice.start;
      if (!tenants.length)
        throw new OperatorError(`wave ${waveId}${previous ? ' --rerun' : ''}: no tenant left to start (${choice.skipped.length} skipped, each with why above)${previous ? '; name a rolled-back tenant with --tenants to migrate it again' : ''}`);
      const started = Date.now();
      const cutoverOf = Object.fromEntries(fleet.tenants.filter((t) => t.cutover).map((t) => [t.id, t.cutover!]));
      await startWave(client, waveId, tenants, policy, undefined, previous ? previous.rerun + 1 : undefined, cutoverOf);
      console.log(`wave ${waveId} ${previous ? `started again (rerun ${previous.rerun + 1})` : 'started'}: ${tenants.length} tenants, concurrency ${policy.concurrency} (workflow ${waveWorkflowId(waveId)})`);
      if (!o.watch) return console.log(`watch it with: airlift status ${waveId}`);
      const { tenants: views } = await watchWave(client, waveId, process.stdout);
      const s = summarize(views, (Date.now() - started) / 1000);
      console.log(`migrated ${s.migrated}, failed ${s.failed}, rolled back ${s.rolledBack} of ${s.tenants} in ${s.seconds}s`);
    });
  });

program
  .command('status')
  .description("show a wave's tenants, one tenant with --tenant, or every wave without either")
  .argument('[wave]', 'wave id')
  .option('--tenant <id>', 'one tenant in detail')
  .option('--json', 'print JSON', false)
  .action(async (waveId: string | undefined, o) => {
    await withClient(async (client, address) => {
      if (!waveId && !o.tenant) return printWaves(client, o.json);
      const lost = `if the Temporal state was lost, run \`airlift reconcile -f ${readDevState()?.fleet ?? '<fleet file>'}\` to repair what no workflow owns`;
      if (o.tenant) {
        await client.workflow.getHandle(tenantWorkflowId(o.tenant)).describe().catch(async (err) => {
          throw err instanceof WorkflowNotFoundError ? new OperatorError(`${await whereIsTenant(client, o.tenant)} on ${address}; ${lost}`) : err;
        });
        const view = await observeTenant(client, o.tenant);
        if (o.json) return console.log(JSON.stringify(view, null, 2));
        console.log(renderTenants([view]));
        const s = view.status;
        if (s?.startedAt) console.log(`  started ${s.startedAt}${s.waveId ? ` in wave ${s.waveId}` : ''}; ${s.endedAt ? `ended ${s.endedAt}` : `in ${phaseText(view)} since ${s.phaseSince}`}`);
        if (view.writeMode === 'read_only') console.log(`  writes FROZEN since ${view.frozenSince} (${formatDuration(Date.now() - Date.parse(view.frozenSince!))})`);
        if (s?.phase === 'rollback_window' && view.state === 'running')
          console.log(`  rollback window ${s.rollbackWindowEndsAt ? `closes at ${s.rollbackWindowEndsAt} (in ${formatDuration(Date.parse(s.rollbackWindowEndsAt) - Date.now())})` : 'open until completed'}: then the point of no return, the source is no longer kept current and a rollback is refused. \`airlift rollback ${o.tenant} --reason …\` takes it back to its source now (nothing is lost: the source is kept current); \`airlift complete ${o.tenant}\` ends the window now`);
        for (const t of view.status?.tables ?? [])
          console.log(`  ${t.table}: ${t.rows} rows, ${t.chunks} chunks${t.mismatchedChunks ? `, ${t.mismatchedChunks} differing: ${t.differences.map((d) => `${d.key} ${d.kind}`).join('; ')}` : ', identical'}`);
        for (const [i, a] of (view.status?.cutoverAttempts ?? []).entries()) console.log(`  cut-over attempt ${i + 1} called off at ${a.at}: ${a.error}`);
        if (view.status?.rollbackRefused) console.log(`  ${view.status.rollbackRefused}`);
        for (const w of view.status?.warnings ?? []) console.log(`  warning: ${w}`);
        // The note whole: the table cuts it at 100 characters.
        if (noteOf(view)) console.log(`  note: ${noteOf(view)}`);
        if (view.error && s?.rollbackReason !== undefined) console.log(`  rollback: ${s.rollbackReason}`);
        return;
      }
      await client.workflow.getHandle(waveWorkflowId(waveId!)).describe().catch((err) => {
        throw err instanceof WorkflowNotFoundError ? new OperatorError(`no wave ${waveId} (workflow ${waveWorkflowId(waveId!)}) on ${address}; check the wave id, or ${lost}`) : err;
      });
      const { wave: w, tenants } = await observeWave(client, waveId!);
      if (o.json) return console.log(JSON.stringify({ wave: w, tenants }, null, 2));
      console.log(`wave ${w.waveId}${w.rerun ? ` (rerun ${w.rerun})` : ''}${w.paused ? ' (paused: no new tenant starts)' : ''}${w.aborted ? ' (aborted)' : ''}, run ${w.runs}: ${tenants.length} tenants: ${phaseCounts(tenants)}`);
      console.log(renderTenants(tenants));
      for (const t of tenants) for (const w of t.status?.warnings ?? []) console.log(`warning for ${t.tenantId}: ${w}`);
    });
  });

async function printWaves(client: Client, json: boolean): Promise<void> {
  const lines = await listWaves(client);
  console.log(json ? JSON.stringify(lines, null, 2) : renderWaves(lines));
}

program
  .command('waves')
  .description('list every wave, newest first: running or ended, its tenants by state')
  .option('--json', 'print JSON', false)
  .action(async (o) => withClient((client) => printWaves(client, o.json)));

program
  .command('reconcile')
  .description('find tenants that no running workflow owns any more (Temporal state lost, workflow terminated) and, with --apply, repair them: thaw writes, journaling off, fences lifted, leftover targets dropped')
  .requiredOption('-f, --fleet <file>', 'fleet file (YAML or JSON)')
  .option('--tenants <ids>', 'comma-separated tenant ids (default: every tenant in the file)')
  .option('--apply', 'repair what was found (default: only report it)', false)
  .option('--json', 'print JSON', false)
  .action(async (o) => {
    const fleet = loadFleet(o.fleet);
    const tenants: string[] | undefined = o.tenants ? String(o.tenants).split(',').map((x: string) => x.trim()).filter(Boolean) : undefined;
    for (const id of tenants ?? []) findTenant(fleet, id);
    const address = temporalSettings().address;
    const connected = await connectClient().catch((err: Error) => ({ error: err.message }));
    const temporal: TemporalAccess = 'client' in connected ? { client: connected.client, address } : { error: connected.error, address };
    try {
      const result = await reconcileFleet(fleet, temporal, { apply: o.apply, env: storageEnv(fleet.storage), tenants });
      if (o.json) console.log(JSON.stringify(result, null, 2));
      else {
        if (!result.temporal.reachable) console.log(`Which tenants a running migration owns is unknown: ${result.temporal.error}`);
        for (const report of result.tenants) console.log(renderReport(report).join('\n'));
        const n = result.needingRepair.length;
        console.log(n === 0 ? 'nothing to repair' : o.apply ? `${n} tenant(s) still need a repair or a person: ${result.needingRepair.join(', ')}` : `${n} tenant(s) need a repair: ${result.needingRepair.join(', ')}; run again with --apply to repair them`);
      }
      process.exitCode = result.needingRepair.length ? 1 : 0;
    } finally {
      if ('close' in connected) await connected.close();
    }
  });

program
  .command('plan')
  .description('dry run: the ordered steps for each tenant, with the exact T-SQL, blob names and ARM operations; nothing is changed')
  .requiredOption('-f, --fleet <file>', 'fleet file (YAML or JSON)')
  .option('--tenants <ids>', 'comma-separated tenant ids (default: every tenant in the file)')
  .option('--json', 'print JSON', false)
  .option('--check', 'also test connectivity and permissions, and list each SQL Server tenant\'s prerequisites as ready, warning or blocking with the fix', false)
  .action(async (o) => {
    const fleet = loadFleet(o.fleet);
    const ids: string[] = o.tenants ? String(o.tenants).split(',').map((x: string) => x.trim()).filter(Boolean) : fleet.tenants.map((t) => t.id);
    const { output, exitCode } = await planCommand(fleet, ids, { check: Boolean(o.check), json: Boolean(o.json) });
    console.log(output);
    process.exitCode = exitCode;
  });

program
  .command('ingest')
  .description('run the tracking gateway (beacons, pixels, admin API) for a fleet file')
  .requiredOption('-f, --fleet <file>', 'fleet file (YAML or JSON) with an ingestion section')
  .option('--port <n>', 'port to listen on', positiveInt('--port'), 8080)
  .option('--host <ip>', 'address to listen on', '127.0.0.1')
  .action(async (o) => {
    const fleet = loadFleet(o.fleet);
    if (!fleet.ingestion) throw new OperatorError(`${fleet.file}: ingestion: missing; add gateways and adminTokenEnv`);
    const token = process.env[fleet.ingestion.adminTokenEnv];
    if (!token) throw new OperatorError(`ingestion.adminTokenEnv: environment variable ${fleet.ingestion.adminTokenEnv} is not set; export the admin token (16+ characters) in it`);
    if (token.length < 16) throw new OperatorError(`ingestion.adminTokenEnv: the admin token in ${fleet.ingestion.adminTokenEnv} has ${token.length} characters; at least 16 are needed (e.g. \`openssl rand -hex 16\`)`);
    const gateway = await listenGateway(createGateway({ fleet, adminToken: token }), o.port, o.host);
    console.log(`airlift gateway on ${gateway.url}: POST /t/<tenant>/events, GET /t/<tenant>/pixel.gif, /healthz, /metrics, /admin (bearer token)`);
    await new Promise<void>((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
    await gateway.stop();
  });

program
  .command('approve')
  .description('approve the cut-over of a tenant waiting in awaiting_cutover (policy cutover: manual), or of every such tenant in a wave')
  .argument('[tenant]', 'tenant id')
  .option('--wave <id>', 'approve every tenant of this wave that is awaiting cut-over')
  .action(async (tenant: string | undefined, o) => {
    if (!tenant === !o.wave) throw new OperatorError('give either a tenant id or --wave ID to approve');
    await withClient(async (client) => {
      if (o.wave) await runningWave(client, o.wave, 'approve');
      const ids = o.wave ? (await observeWave(client, o.wave)).tenants.filter((t) => t.phase === 'awaiting_cutover').map((t) => t.tenantId) : [tenant!];
      if (!ids.length) throw new OperatorError(`approve refused: no tenant of wave ${o.wave} is awaiting cut-over`);
      for (const id of ids) {
        const handle = await runningTenant(client, id, 'approve');
        console.log(await sendUpdate(() => handle.executeUpdate(approveCutoverUpdate)));
      }
    });
  });

program
  .command('complete')
  .description("end a tenant's rollback window now: the point of no return. The source stops being kept current and a rollback is refused from then on")
  .argument('<tenant>', 'tenant id')
  .action(async (tenant: string) => {
    console.log(await withClient((client) => commandTenant(client, tenant, 'complete')));
  });

program
  .command('rollback')
  .description('roll one tenant back: it stays on (or returns to) its source, nothing partial left behind')
  .argument('<tenant>', 'tenant id')
  .requiredOption('--reason <text>', 'why; recorded in the workflow and shown in status')
  .action(async (tenant: string, o) => {
    // An update, not a signal: past the point of no return the refusal and its reason come back here.
    const answer = await withClient(async (client) => {
      const handle = await runningTenant(client, tenant, 'rollback');
      return sendUpdate(() => handle.executeUpdate(rollbackUpdate, { args: [o.reason] }));
    });
    console.log(`${answer}: ${o.reason}`);
  });

for (const [name, update] of [['pause', pauseUpdate], ['resume', resumeUpdate]] as const) {
  program
    .command(name)
    .description(name === 'pause'
      ? 'hold one tenant before its next phase (the running step goes on to its end; a frozen tenant stays frozen while held), or a whole wave (no new tenants start)'
      : 'let a paused tenant or wave go on')
    .argument('[tenant]', 'tenant id')
    .option('--wave <id>', `${name} a wave instead`)
    .action(async (tenant: string | undefined, o) => {
      if (!tenant === !o.wave) throw new OperatorError(`give either a tenant id or --wave ID to ${name}`);
      const answer = await withClient(async (client) => {
        const handle = o.wave ? await runningWave(client, o.wave, name) : await runningTenant(client, tenant!, name);
        return sendUpdate(() => handle.executeUpdate(update));
      });
      console.log(answer);
    });
}

program
  .command('abort')
  .description('stop a wave from starting more tenants; running tenants finish or roll back on their own')
  .argument('<wave>', 'wave id')
  .action(async (waveId: string) => {
    await withClient(async (client) => (await runningWave(client, waveId, 'abort')).signal(abortSignal));
    console.log(`wave ${waveId}: no new tenants will start`);
  });

/** Errors written for the operator: their message is the whole answer, without a stack. */
const KNOWN_ERRORS = [OperatorError, InvalidArgumentError, SetupError];

program.parseAsync(process.argv).catch((err: Error) => {
  // One line for the operator; the stack trace of an unexpected error only with --debug.
  const known = isDomainError(err) || KNOWN_ERRORS.some((k) => err instanceof k);
  const debug = process.argv.includes('--debug');
  const text = debug ? (err.stack ?? err.message) : known ? err.message : `${String(err.message).split('\n')[0]} (--debug shows where)`;
  console.error(`airlift: ${redactSecrets(text)}`);
  process.exitCode = 2;
});
