// The war-room page: a snapshot and then changes by server-sent events from its own server. Every
// piece of data reaches the page through textContent or a property, never as markup. A row is built
// once per tenant and then only the cells whose text changed are touched, so a thousand tenants
// stay responsive; rows off screen are skipped by the browser (content-visibility in the CSS).
'use strict';
(function warRoom() {
  const PHASES = ['not started', 'pending', 'preflight', 'journaling', 'snapshotting', 'copying', 'restoring', 'catching_up', 'verifying',
    'awaiting_cutover', 'cutting_over', 'rollback_window', 'finalizing', 'completed', 'rolling_back', 'rolled_back', 'failed', 'terminated', 'skipped'];
  const COLUMNS = ['tenant', 'wave', 'served', 'phase', 'writes', 'progress', 'throughput', 'eta', 'lag', 'pause', 'held', 'mismatches', 'error', 'workflow'];
  const VERBS = {
    pause: 'Pause', resume: 'Resume', approve: 'Approve the cut-over of', complete: 'Complete the rollback window of', rollback: 'Roll back',
  };
  /** What the confirmation adds for a command whose effect is more than its name says. */
  const CONSEQUENCES = {
    complete: ' This is the point of no return: the source stops being kept current and a rollback is refused from then on.',
    rollback: ' The tenant goes back to (or stays on) its source; nothing it wrote is lost.',
    approve: ' Its writes are fenced for the cut-over pause, then it is served from its target.',
    abort: ' No new tenants will start; running ones finish or roll back on their own.',
  };
  /** The commands whose OK button is red: the ones that cannot be taken back. */
  const DANGEROUS = new Set(['rollback', 'complete', 'abort']);

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  /** Sets text only when it changed, so an unchanged cell is never touched. */
  const setText = (node, text) => {
    if (node.textContent !== text) node.textContent = text;
  };
  const setAttr = (node, name, value) => {
    if (value === undefined || value === null) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  };

  const state = {
    tenants: new Map(),
    rows: new Map(),
    waves: [],
    pauses: [],
    series: { t: [], eventsPerSecond: [] },
    admin: false,
    controls: false,
    selected: null,
    totals: null,
    needsYou: [],
    openWaves: new Set(),
    temporalUiUrl: undefined,
    namespace: 'default',
  };

  // ---- formatting -------------------------------------------------------------------------------
  const duration = (ms) => {
    if (ms === undefined || ms === null || Number.isNaN(ms)) return '';
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  };
  const bytesPerSecond = (n) => {
    if (n === undefined || n === null) return '';
    if (n < 1024) return `${n} B/s`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB/s`;
    return `${(n / 1048576).toFixed(1)} MiB/s`;
  };
  const words = (s) => String(s).replace(/_/g, ' ');
  const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
  const untilText = (iso) => `closes in ${duration(Date.parse(iso) - Date.now()) || '0s'}`;
  /** A hold says before what and by whom; a pause not yet reached says so; the rollback window counts down. */
  const phaseText = (t) => {
    if (t.state === 'completed' || t.state === 'rolled_back' || t.state === 'failed' || t.state === 'terminated' || t.state === 'skipped') return words(t.state);
    if (t.heldBefore) return `held before ${words(t.heldBefore)} (${t.pausedBy === 'policy' ? 'breakpoint' : 'operator'})`;
    if (t.paused) return `${words(t.phase)} (pause requested)`;
    if (t.rollbackWindowEndsAt) return `rollback window, ${untilText(t.rollbackWindowEndsAt)}`;
    return words(t.phase);
  };
  const servedText = (t) => (t.servedFrom === 'target' ? 'Azure' : t.servedFrom === 'source' ? 'source' : '?');
  const noteText = (t) => t.lastError || (t.rollbackReason ? `rolled back: ${t.rollbackReason}` : '') || t.laterRun || t.waiting || (t.warnings && t.warnings.length ? `warning: ${t.warnings.join('; ')}` : '');
  const writesText = (t) => {
    if (t.writeMode === 'read_only') return t.frozenSince ? `frozen ${duration(Date.now() - Date.parse(t.frozenSince))}` : 'frozen';
    if (t.writeMode === 'read_write') return 'read-write';
    return '';
  };
  const workflowUrl = (t) => {
    if (!state.temporalUiUrl || !t.workflowId) return null;
    const base = state.temporalUiUrl.replace(/\/$/, '');
    return `${base}/namespaces/${encodeURIComponent(state.namespace)}/workflows/${encodeURIComponent(t.workflowId)}${t.runId ? `/${encodeURIComponent(t.runId)}` : ''}/history`;
  };

  // ---- tenant rows -----------------------------------------------------------------------------
  function buildRow(id) {
    const root = el('div', 'row');
    root.setAttribute('role', 'row');
    root.dataset.tenant = id;
    const cells = {};
    for (const c of COLUMNS) {
      const cell = el('span', `c-${c}`);
      cell.setAttribute('role', 'cell');
      cells[c] = cell;
      root.append(cell);
    }
    const name = el('button', 'name');
    name.type = 'button';
    const sub = el('span', 'tenant-id');
    cells.tenant.append(name, sub);
    const bar = el('span', 'bar');
    const fill = el('span', 'fill');
    bar.append(fill);
    const label = el('span', 'label');
    cells.progress.append(bar, label);
    const link = el('a', 'wf', 'open');
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    cells.workflow.append(link);
    name.addEventListener('click', () => select(id));
    return { root, cells, name, sub, fill, label, link, visible: true };
  }

  function paintRow(r, t) {
    setText(r.name, t.name || t.tenantId);
    setText(r.sub, t.name ? t.tenantId : '');
    setText(r.cells.wave, t.waveId || '');
    setText(r.cells.served, servedText(t));
    setAttr(r.cells.served, 'data-side', t.servedFrom || null);
    setAttr(r.cells.served, 'title', t.servedFrom ? `the routing catalog sends this tenant's writes to its ${t.servedFrom}` : 'unknown: see its last error');
    setText(r.cells.phase, phaseText(t));
    setAttr(r.cells.phase, 'data-ends-at', t.rollbackWindowEndsAt || null);
    setAttr(r.root, 'data-state', t.state);
    setAttr(r.root, 'data-phase', t.phase);
    setText(r.cells.writes, writesText(t));
    setAttr(r.cells.writes, 'title', t.frozenSince ? `writes frozen since ${new Date(t.frozenSince).toLocaleString()}` : null);
    const width = t.progress.fraction === null ? '100%' : `${Math.round(t.progress.fraction * 100)}%`;
    if (r.fill.style.width !== width) r.fill.style.width = width;
    setAttr(r.fill, 'data-kind', t.progress.fraction === null ? t.state : null);
    setText(r.label, t.progress.label);
    setText(r.cells.throughput, bytesPerSecond(t.throughputBytesPerSecond));
    setText(r.cells.eta, t.etaSeconds !== undefined ? duration(t.etaSeconds * 1000) : '');
    setText(r.cells.lag, t.lag !== undefined && t.state === 'running' ? String(t.lag) : '');
    setText(r.cells.pause, t.cutoverPauseMs !== undefined ? `${t.cutoverPauseMs} ms` : '');
    setText(r.cells.held, t.heldEvents !== undefined ? String(t.heldEvents) : '');
    setText(r.cells.mismatches, String(t.mismatches));
    setAttr(r.cells.mismatches, 'data-bad', t.mismatches ? '1' : null);
    const note = noteText(t);
    setText(r.cells.error, note);
    setAttr(r.cells.error, 'title', note || null);
    setAttr(r.cells.error, 'data-kind', t.lastError || t.rollbackReason ? null : 'note');
    const url = workflowUrl(t);
    setAttr(r.link, 'href', url);
    r.link.hidden = !url;
  }

  function matches(t, wave = $('filter-wave').value, phase = $('filter-phase').value) {
    if (wave === '-' ? t.waveId : wave && t.waveId !== wave) return false;
    if (phase && t.phase !== phase && t.state !== phase && !(phase === 'not started' && t.state === 'not_started')) return false;
    return true;
  }

  function applyFilters() {
    const started = performance.now();
    const wave = $('filter-wave').value;
    const phase = $('filter-phase').value;
    let shown = 0;
    for (const [id, r] of state.rows) {
      const visible = matches(state.tenants.get(id), wave, phase);
      if (visible !== r.visible) {
        r.root.hidden = !visible;
        r.visible = visible;
      }
      if (visible) shown++;
    }
    setText($('shown'), `showing ${shown} of ${state.rows.size} tenants`);
    performance.measure('war-room:filter', { start: started, detail: shown });
  }

  function upsertTenants(list) {
    const container = $('rows');
    const fresh = [];
    for (const t of list) {
      state.tenants.set(t.tenantId, t);
      let r = state.rows.get(t.tenantId);
      if (!r) {
        r = buildRow(t.tenantId);
        state.rows.set(t.tenantId, r);
        fresh.push(r.root);
      }
      paintRow(r, t);
      const visible = matches(t);
      if (visible !== r.visible) {
        r.root.hidden = !visible;
        r.visible = visible;
      }
    }
    if (fresh.length) container.append(...fresh);
    if (state.selected && list.some((t) => t.tenantId === state.selected)) paintDetail();
  }

  function removeTenants(ids) {
    for (const id of ids) {
      state.rows.get(id)?.root.remove();
      state.rows.delete(id);
      state.tenants.delete(id);
    }
  }

  // ---- waves -----------------------------------------------------------------------------------
  function totalsText(x) {
    const parts = [`${x.onTarget} of ${x.tenants} on Azure`, `${x.onSource} on source`, `${x.inFlight} in flight`];
    if (x.pending) parts.push(`${x.pending} pending`);
    parts.push(`${x.failed} failed`);
    if (x.terminated) parts.push(`${x.terminated} terminated`);
    if (x.bytesTotal) parts.push(`${mib(x.bytesDone)} of ${mib(x.bytesTotal)} moved`);
    if (x.etaSeconds !== undefined) parts.push(`ETA ${duration(x.etaSeconds * 1000)}`);
    return parts.join(' · ');
  }

  function paintFleet() {
    if (state.totals) setText($('totals'), `fleet: ${totalsText(state.totals)}`);
    const lane = $('needs-you');
    // Rebuilt only when what it shows changed (its countdowns tick on their own), so a button is not
    // replaced under the operator's pointer.
    const key = JSON.stringify([state.needsYou, state.admin, state.needsYou.map((n) => (state.tenants.get(n.tenantId) || {}).controls)]);
    if (lane.dataset.key === key) return;
    lane.dataset.key = key;
    setAttr(lane, 'data-empty', state.needsYou.length ? null : '');
    setText($('needs-count'), state.needsYou.length ? `(${state.needsYou.length})` : '— nothing right now');
    $('needs-list').replaceChildren(...state.needsYou.map((n) => {
      const t = state.tenants.get(n.tenantId);
      const li = el('li');
      li.dataset.tenant = n.tenantId;
      li.dataset.kind = t ? t.state : '';
      const name = el('button', 'name', n.name ? `${n.name} (${n.tenantId})` : n.tenantId);
      name.type = 'button';
      name.addEventListener('click', () => select(n.tenantId));
      const why = el('span', 'why', n.why);
      why.title = n.why;
      if (n.endsAt) {
        const left = el('span', 'countdown', ` · ${untilText(n.endsAt)}`);
        left.dataset.endsAt = n.endsAt;
        why.append(left);
      }
      li.append(name, why);
      if (n.action) {
        const b = el('button', n.action === 'complete' ? 'danger' : '', n.action === 'complete' ? 'Complete…' : `${n.action[0].toUpperCase()}${n.action.slice(1)}…`);
        b.type = 'button';
        b.dataset.command = n.action;
        controlState(b, t, n.action);
        b.addEventListener('click', () => t && confirmCommand({ kind: 'tenant', id: t.tenantId, label: t.name ? `${t.name} (${t.tenantId})` : t.tenantId, command: n.action }));
        li.append(b);
      } else li.append(el('span'));
      return li;
    }));
  }

  function paintWaves() {
    paintFleet();
    const box = $('waves');
    const cards = state.waves.map((w) => {
      const card = el('article', w.running ? 'wave' : `wave ended${state.openWaves.has(w.waveId) ? ' open' : ''}`);
      card.dataset.wave = w.waveId;
      const title = el('h2', '', `wave ${w.waveId}`);
      const flags = [w.running ? 'running' : 'ended', w.paused ? 'paused' : '', w.aborted ? 'aborted' : '', w.runs > 1 ? `run ${w.runs}` : ''].filter(Boolean).join(' · ');
      const meta = el('p', 'meta', `${w.tenants.length} tenants · ${flags}`);
      const totals = el('p', 'totals', w.totals ? totalsText(w.totals) : '');
      const counts = el('ul', 'counts');
      for (const [phase, n] of Object.entries(w.counts)) {
        const chip = el('li', 'chip', `${n} ${words(phase)}`);
        chip.dataset.phase = phase;
        counts.append(chip);
      }
      card.append(title, meta, totals, counts);
      if (w.running && w.waiting && w.counts.pending) card.append(el('p', 'meta', `pending: ${w.waiting}`));
      if (!w.running) {
        const toggle = el('button', '', state.openWaves.has(w.waveId) ? 'less' : 'more');
        toggle.type = 'button';
        toggle.addEventListener('click', () => {
          if (state.openWaves.has(w.waveId)) state.openWaves.delete(w.waveId);
          else state.openWaves.add(w.waveId);
          paintWaves();
        });
        card.append(toggle);
      }
      const show = el('button', '', 'show only');
      show.type = 'button';
      show.addEventListener('click', () => {
        $('filter-wave').value = w.waveId;
        applyFilters();
      });
      card.append(show);
      if (w.running && !w.aborted) {
        const abort = el('button', 'danger', 'Abort wave…');
        abort.type = 'button';
        abort.dataset.command = 'abort';
        abort.disabled = !state.admin;
        abort.title = state.admin ? 'no new tenants start; running ones finish or roll back on their own' : 'log in with the admin token to use the controls';
        abort.addEventListener('click', () => confirmCommand({ kind: 'wave', id: w.waveId, label: `wave ${w.waveId}`, command: 'abort' }));
        card.append(abort);
      }
      return card;
    });
    box.replaceChildren(...cards);
    // The wave filter lists every wave, and "(no wave)".
    const select = $('filter-wave');
    const wanted = ['', ...state.waves.map((w) => w.waveId), '-'];
    const have = [...select.options].map((o) => o.value);
    if (wanted.join('\n') !== have.join('\n')) {
      const current = select.value;
      select.replaceChildren(...wanted.map((v) => {
        const o = el('option', '', v === '' ? 'all' : v === '-' ? '(no wave)' : v);
        o.value = v;
        return o;
      }));
      select.value = wanted.includes(current) ? current : '';
    }
  }

  // ---- detail panel ----------------------------------------------------------------------------
  function select(id) {
    state.selected = id;
    $('detail').hidden = false;
    paintDetail();
  }

  function fact(list, term, value) {
    if (value === undefined || value === null || value === '') return;
    list.append(el('dt', '', term), el('dd', '', String(value)));
  }

  function paintDetail() {
    const t = state.tenants.get(state.selected);
    if (!t) return;
    setText($('detail-title'), t.name || t.tenantId);
    setText($('detail-sub'), `${t.name ? `${t.tenantId} · ` : ''}${t.waveId ? `wave ${t.waveId} · ` : ''}${phaseText(t)}`);
    const timeline = $('timeline');
    // One line per phase, its bar placed where it ran in the tenant's whole time.
    const total = t.timeline.reduce((n, s) => n + s.ms, 0) || 1;
    let offset = 0;
    timeline.replaceChildren(...t.timeline.map((s) => {
      const seg = el('div', s.current ? 'seg current' : 'seg');
      seg.dataset.phase = s.phase;
      const track = el('span', 'track');
      const bar = el('span', 'span');
      bar.style.marginLeft = `${(100 * offset) / total}%`;
      bar.style.width = `${Math.max((100 * s.ms) / total, 0.5)}%`;
      offset += s.ms;
      track.append(bar);
      seg.append(el('span', 'what', words(s.phase)), track, el('span', 'took', `${duration(s.ms) || '0s'}${s.current ? ' so far' : ''}`));
      return seg;
    }));
    const facts = $('detail-facts');
    facts.replaceChildren();
    fact(facts, 'state', words(t.state));
    fact(facts, 'served from', t.servedFrom ? `${servedText(t)} (${t.servedFrom})` : 'unknown');
    fact(facts, 'rollback window', t.rollbackWindowEndsAt ? `${untilText(t.rollbackWindowEndsAt)} (${new Date(t.rollbackWindowEndsAt).toLocaleTimeString()}): then the point of no return; a rollback now takes it back to its source, nothing lost` : '');
    fact(facts, 'waiting', t.waiting);
    for (const w of t.warnings || []) fact(facts, 'warning', w);
    fact(facts, 'earlier run kept', t.laterRun);
    fact(facts, 'started', t.startedAt && new Date(t.startedAt).toLocaleString());
    fact(facts, 'elapsed', t.elapsedMs !== undefined ? duration(t.elapsedMs) : '');
    fact(facts, 'in phase since', t.phaseSince && new Date(t.phaseSince).toLocaleTimeString());
    fact(facts, 'writes', writesText(t));
    fact(facts, 'progress', t.progress.label);
    fact(facts, 'cut-over pause', t.cutoverPauseMs !== undefined ? `${t.cutoverPauseMs} ms, ${t.heldEvents ?? 0} events held` : '');
    fact(facts, 'rollback reason', t.rollbackReason);
    fact(facts, 'rollback refused', t.rollbackRefused);
    for (const [i, a] of (t.cutoverAttempts || []).entries()) fact(facts, `cut-over attempt ${i + 1} called off`, `${a.at}: ${a.error}`);
    const url = workflowUrl(t);
    if (url) {
      const dd = el('dd');
      const a = el('a', '', t.workflowId);
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      dd.append(a);
      facts.append(el('dt', '', 'Temporal'), dd);
    }
    setText($('detail-error'), t.lastError || '—');
    $('detail-tables').replaceChildren(...(t.tables || []).map((tb) =>
      el('li', tb.mismatchedChunks ? 'bad' : '', `${tb.table}: ${tb.rows} rows, ${tb.mismatchedChunks ? `${tb.mismatchedChunks} differing chunks: ${tb.differences.join('; ')}` : 'identical'}`)));
    $('detail-runs').replaceChildren(...(t.runs || []).map((run) =>
      el('li', '', `${new Date(run.startedAt).toLocaleString()} · ${run.waveId ? `wave ${run.waveId}` : 'no wave'} · ${words(run.state)}${run.closedAt ? ` · ended ${new Date(run.closedAt).toLocaleTimeString()}` : ''}`)));
    paintControls();
  }

  /** A control is enabled only when the admin is logged in and the workflow would take it now; else the reason is its tooltip. */
  function controlState(b, t, command) {
    const refusal = !state.admin ? 'log in with the admin token to use the controls' : !t ? 'no such tenant' : (t.controls && t.controls[command]) || null;
    b.disabled = Boolean(refusal);
    b.title = refusal || '';
  }

  function paintControls() {
    const t = state.tenants.get(state.selected);
    for (const b of document.querySelectorAll('#detail-controls button')) controlState(b, t, b.dataset.command);
    setText($('controls-hint'), state.controls ? (state.admin ? '' : 'read-only: log in with the admin token to use the controls') : 'read-only: this war room has no admin token');
  }

  // ---- controls --------------------------------------------------------------------------------
  let pending = null;
  function confirmCommand(target) {
    pending = target;
    const verb = target.command === 'abort' ? 'Abort' : VERBS[target.command];
    setText($('confirm-text'), `${verb} ${target.label}?${CONSEQUENCES[target.command] || ''}`);
    setText($('confirm-ok'), `${verb} ${target.label}`);
    $('confirm-ok').className = DANGEROUS.has(target.command) ? 'danger' : 'safe';
    $('confirm-reason-label').hidden = target.command !== 'rollback';
    $('confirm-reason').value = '';
    $('confirm').showModal();
  }

  function toast(text, bad) {
    const box = $('toast');
    box.hidden = false;
    box.className = bad ? 'bad' : 'good';
    setText(box, text);
  }

  async function post(path, body) {
    const res = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}), credentials: 'same-origin' });
    const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    return { ok: res.ok, status: res.status, data };
  }

  $('confirm').addEventListener('close', async () => {
    const target = pending;
    pending = null;
    if (!target || $('confirm').returnValue !== 'ok') return;
    const reason = $('confirm-reason').value.trim();
    if (target.command === 'rollback' && !reason) return toast('a rollback needs a reason', true);
    const path = target.kind === 'wave'
      ? `/api/waves/${encodeURIComponent(target.id)}/abort`
      : `/api/tenants/${encodeURIComponent(target.id)}/${target.command}`;
    const { ok, status, data } = await post(path, target.command === 'rollback' ? { reason } : {});
    if (status === 401) await refreshSession();
    toast(ok ? data.message : `${target.label}: ${data.error}`, !ok);
  });

  for (const b of document.querySelectorAll('#detail-controls button')) {
    b.addEventListener('click', () => {
      const t = state.tenants.get(state.selected);
      if (t) confirmCommand({ kind: 'tenant', id: t.tenantId, label: t.name ? `${t.name} (${t.tenantId})` : t.tenantId, command: b.dataset.command });
    });
  }
  $('detail-close').addEventListener('click', () => {
    state.selected = null;
    $('detail').hidden = true;
  });

  async function refreshSession() {
    const res = await fetch('/api/session', { credentials: 'same-origin' });
    const s = await res.json();
    state.admin = s.admin;
    state.controls = s.controls;
    $('login').hidden = !s.controls || s.admin;
    $('logout').hidden = !s.admin;
    setText($('session'), s.admin ? 'admin' : s.controls ? 'read-only' : 'read-only (no admin token)');
    paintControls();
    paintWaves();
  }

  $('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const { ok, data } = await post('/api/login', { token: $('token').value });
    $('token').value = '';
    if (!ok) toast(`log in: ${data.error}`, true);
    else $('toast').hidden = true;
    await refreshSession();
  });
  $('logout').addEventListener('click', async () => {
    await post('/api/logout');
    await refreshSession();
  });

  // ---- charts (uPlot) --------------------------------------------------------------------------
  let eventsChart = null;
  let pausesChart = null;
  const chartWidth = (id) => Math.max(280, $(id).clientWidth || 480);
  function makeCharts() {
    // The y axis gets room for "10,000"; a single pause point gets a minute either side, not years.
    const axes = [{ stroke: '#9aa4b2', grid: { stroke: '#2a3140' } }, { stroke: '#9aa4b2', grid: { stroke: '#2a3140' }, size: 64 }];
    eventsChart = new uPlot({
      width: chartWidth('chart-events'), height: 160, axes, legend: { show: false },
      series: [{}, { label: 'events/s', stroke: '#4fb3ff', width: 2, fill: 'rgba(79,179,255,0.15)', spanGaps: true, points: { show: false } }],
    }, [state.series.t, state.series.eventsPerSecond], $('chart-events'));
    pausesChart = new uPlot({
      width: chartWidth('chart-pauses'), height: 160, axes, legend: { show: false },
      scales: {
        x: { time: true, range: (_u, min, max) => (min === null || max === null ? [Date.now() / 1000 - 60, Date.now() / 1000] : max - min < 60 ? [min - 60, max + 60] : [min, max]) },
        y: { range: (_u, _min, max) => [0, Math.max(10, (max || 0) * 1.2)] },
      },
      series: [{}, { label: 'pause ms', stroke: '#ffb454', fill: '#ffb454', paths: () => null, points: { show: true, size: 9, fill: '#ffb454' } }],
    }, pauseData(), $('chart-pauses'));
  }
  function pauseData() {
    return [state.pauses.map((p) => Date.parse(p.at) / 1000), state.pauses.map((p) => p.ms)];
  }
  window.addEventListener('resize', () => {
    eventsChart?.setSize({ width: chartWidth('chart-events'), height: 160 });
    pausesChart?.setSize({ width: chartWidth('chart-pauses'), height: 160 });
  });

  // ---- the stream ------------------------------------------------------------------------------
  function feedError(text) {
    $('feed-error').hidden = !text;
    setText($('feed-error'), text || '');
  }

  function onInit(data) {
    const started = performance.now();
    state.temporalUiUrl = data.temporalUiUrl;
    state.namespace = data.namespace;
    const ui = $('temporal-ui');
    ui.hidden = !data.temporalUiUrl;
    if (data.temporalUiUrl) ui.href = data.temporalUiUrl;
    const ids = new Set(data.tenants.map((t) => t.tenantId));
    removeTenants([...state.rows.keys()].filter((id) => !ids.has(id)));
    upsertTenants(data.tenants);
    state.waves = data.waves;
    state.pauses = data.pauses;
    state.series = data.series;
    state.totals = data.totals;
    state.needsYou = data.needsYou || [];
    paintWaves();
    applyFilters();
    if (!eventsChart) makeCharts();
    else {
      eventsChart.setData([state.series.t, state.series.eventsPerSecond]);
      pausesChart.setData(pauseData());
    }
    feedError(data.feedError);
    performance.measure('war-room:init', { start: started, detail: data.tenants.length });
  }

  function onUpdate(data) {
    if (data.feedError !== undefined) feedError(data.feedError);
    if (!data.waves) return;
    const started = performance.now();
    removeTenants(data.removed || []);
    upsertTenants(data.tenants);
    state.waves = data.waves;
    state.totals = data.totals;
    state.needsYou = data.needsYou || [];
    paintWaves();
    if (data.removed && data.removed.length) applyFilters();
    else setText($('shown'), `showing ${[...state.rows.values()].filter((r) => r.visible).length} of ${state.rows.size} tenants`);
    if (data.point) {
      state.series.t.push(data.point[0]);
      state.series.eventsPerSecond.push(data.point[1]);
      if (state.series.t.length > 600) {
        state.series.t.shift();
        state.series.eventsPerSecond.shift();
      }
      eventsChart?.setData([state.series.t, state.series.eventsPerSecond]);
    }
    if (data.pauses) {
      state.pauses = data.pauses;
      pausesChart?.setData(pauseData());
    }
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    document.body.dataset.updateRows = String(data.tenants.length);
    // For `npm run bench -- war-room`: the time to apply one update, and how many rows it carried.
    performance.measure('war-room:update', { start: started, detail: data.tenants.length });
  }

  const phaseSelect = $('filter-phase');
  for (const p of PHASES) {
    const o = el('option', '', words(p));
    o.value = p;
    phaseSelect.append(o);
  }
  phaseSelect.addEventListener('change', applyFilters);
  $('filter-wave').addEventListener('change', applyFilters);

  /** Once a second: every countdown to a rollback window's close. */
  function tick() {
    for (const node of document.querySelectorAll('[data-ends-at]')) {
      const t = node.closest('.row') ? state.tenants.get(node.closest('.row').dataset.tenant) : null;
      setText(node, t ? phaseText(t) : ` · ${untilText(node.dataset.endsAt)}`);
    }
  }

  // The stream reconnects by itself (a restarted `airlift dev` comes back on the same port); while it
  // is away the page greys its data and says how old it is, and a closed stream is opened again.
  let lastData = Date.now();
  let connected = false;
  function paintFreshness() {
    const age = Date.now() - lastData;
    const stale = !connected || age > 10000;
    document.body.classList.toggle('stale', stale);
    setText($('updated'), stale ? `data from ${duration(age)} ago${connected ? ' (no update since)' : ''}` : `updated ${new Date(lastData).toLocaleTimeString()}`);
  }
  function connect() {
    const source = new EventSource('/api/events');
    source.addEventListener('init', (e) => {
      lastData = Date.now();
      onInit(JSON.parse(e.data));
      void refreshSession();
    });
    source.addEventListener('update', (e) => {
      const data = JSON.parse(e.data);
      if (data.waves) lastData = Date.now();
      onUpdate(data);
    });
    source.addEventListener('open', () => {
      connected = true;
      $('live').className = 'live on';
      setText($('live'), 'live');
      paintFreshness();
    });
    source.addEventListener('error', () => {
      connected = false;
      $('live').className = 'live off';
      setText($('live'), 'reconnecting…');
      paintFreshness();
      // The browser retries a dropped stream by itself, but not one it closed (an error answer).
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
  }
  connect();
  setInterval(() => {
    paintFreshness();
    tick();
  }, 1000);
  void refreshSession();
}());
