// `airlift setup` (which `npm test` runs first) on a machine without Chromium: what it would run, or
// the exact command it tells the operator to run. The decisions are asked of the same function the
// command uses, with the machine's facts given, so no test has to uninstall a browser.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { decideChromium, ensureChromium, machineFacts, type MachineFacts } from '../../cli/setup';

const onlyAptGet = (file: string) => file === '/usr/bin/apt-get';
const facts = (over: Partial<MachineFacts>): MachineFacts => ({ path: '/usr/bin/chromium', chosenByEnv: false, executable: onlyAptGet, uid: 0, aptGet: '/usr/bin/apt-get', ...over });

test('as root with apt-get and no Chromium, setup installs Debian\'s chromium non-interactively', () => {
  const decision = decideChromium(facts({}));
  expect(decision).toEqual({
    kind: 'install',
    path: '/usr/bin/chromium',
    commands: [['/usr/bin/apt-get', 'update', '-qq'], ['/usr/bin/apt-get', 'install', '-y', '-qq', 'chromium']],
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
  const said: string[] = [];
  expect(ensureChromium((l) => said.push(l), { dryRun: true, facts: facts({}) })).toBeUndefined();
  expect(said).toEqual(["would install Debian's Chromium (for the war-room browser tests): DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get update -qq && /usr/bin/apt-get install -y -qq chromium"]);
});

test('without root it installs nothing and says the exact command to run', () => {
  const decision = decideChromium(facts({ uid: 1000 }));
  expect(decision.kind).toBe('cannot');
  expect(decision.kind === 'cannot' && decision.message).toContain("run `sudo sh -c 'apt-get update && apt-get install -y chromium'`, then run this again");
  expect(() => ensureChromium(() => {}, { facts: facts({ uid: 1000 }) })).toThrow(/needs root/);
});

test('without apt-get, or with AIRLIFT_CHROMIUM naming a missing file, it says what to set', () => {
  const noApt = decideChromium(facts({ aptGet: undefined }));
  expect(noApt.kind === 'cannot' && noApt.message).toMatch(/no apt-get here .* set AIRLIFT_CHROMIUM to its path/);
  const wrong = decideChromium(facts({ path: '/opt/chrome/chrome', chosenByEnv: true }));
  expect(wrong.kind === 'cannot' && wrong.message).toBe("AIRLIFT_CHROMIUM: /opt/chrome/chrome is not an executable file; point it at a Chromium binary, or unset it to use Debian's (/usr/bin/chromium)");
  // AIRLIFT_CHROMIUM naming the Debian path itself is still installed by apt-get.
  expect(decideChromium(facts({ chosenByEnv: true })).kind).toBe('install');
});

test('a Chromium already there is used as it is', () => {
  expect(decideChromium(facts({ executable: () => true }))).toEqual({ kind: 'present', path: '/usr/bin/chromium' });
  const found = machineFacts({ AIRLIFT_CHROMIUM: process.execPath, PATH: '' });
  expect(found).toMatchObject({ path: process.execPath, chosenByEnv: true, aptGet: undefined });
  expect(decideChromium(found)).toEqual({ kind: 'present', path: process.execPath });
});

test('the setup command refuses in one line with exit code 2 when it cannot install Chromium', () => {
  const run = spawnSync(process.execPath, [join(__dirname, '../../bin/airlift.js'), 'setup', '--quiet', '--dry-run'], {
    encoding: 'utf8',
    env: { ...process.env, AIRLIFT_CHROMIUM: '/nonexistent/chromium' },
    timeout: 60000,
  });
  expect(run.stderr.trim()).toBe("airlift: AIRLIFT_CHROMIUM: /nonexistent/chromium is not an executable file; point it at a Chromium binary, or unset it to use Debian's (/usr/bin/chromium)");
  expect(run.status).toBe(2);
});
