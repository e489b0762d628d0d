/**
 * The kiln jobs dashboard, in the browser: it fetches the overview (workers, jobs) and the selected
 * job's detail from the JSON API, draws them, and listens to /api/live, an event stream of small
 * "this changed" notes, to fetch again what changed. Plain JavaScript with no build step; every
 * text from the server goes in as text (textContent), never as HTML. uPlot (a global, from
 * /vendor/uplot.js) draws the loss curve.
 */
/* global uPlot */

const $ = (id) => document.getElementById(id);

const LIVE_STATES = new Set(['PENDING', 'RUNNING']);
const CHART_HEIGHT = 240;

/** The event stream, closed for good once the server says the page is not signed in. */
let live = null;

const page = {
  /** The id of the job shown in the detail panel, or null. */
  selected: null,
  /** The uPlot instance, and which job it draws. */
  chart: null,
  chartJob: null,
};

/** Thrown on 401: the browser has no valid token cookie. */
class SignedOut extends Error {}

async function api(path, init = {}) {
  const res = await fetch(path, { cache: 'no-store', credentials: 'same-origin', ...init });
  if (res.status === 401) throw new SignedOut();
  if (!res.ok) {
    const text = await res.text();
    throw new Error(`${path}: ${res.status} ${text.trim()}`);
  }
  return res.json();
}

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, String(value));
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

const stateBadge = (state, testid) => el('span', { class: `state ${state}`, 'data-testid': testid }, state);
const time = (ms) => (ms === null ? '' : new Date(ms).toLocaleTimeString());
const fixed = (x, digits = 4) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '');

function duration(seconds) {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Runs `load` one at a time: asked again while it runs, it runs once more afterwards. A burst of
 * notes (a job's progress, a log line, a state) becomes one or two fetches, never a pile-up.
 */
function coalesced(load) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await load();
      showProblem(null);
    } catch (e) {
      showProblem(e);
    } finally {
      running = false;
      if (again) {
        again = false;
        void run();
      }
    }
  };
  return run;
}

function showProblem(error) {
  const box = $('problem');
  if (error === null) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.textContent =
    error instanceof SignedOut
      ? 'Not signed in: open this page as /?token=<token> (the coordinator token) once.'
      : `Could not load: ${error.message}`;
  if (error instanceof SignedOut) live?.close();
}

// ---- The overview: workers and jobs ----

const refreshOverview = coalesced(async () => {
  const overview = await api('/api/overview');
  drawWorkers(overview.workers);
  drawJobs(overview.jobs, overview.total);
});

function drawWorkers(workers) {
  $('workers').replaceChildren(
    ...workers.map((w) =>
      el(
        'tr',
        { 'data-testid': 'worker-row', 'data-worker': w.name },
        el('td', {}, w.name),
        el('td', {}, w.device),
        el(
          'td',
          { class: w.up ? 'health-up' : 'health-down', title: w.note ?? '', 'data-testid': 'worker-health' },
          `${w.up ? 'up' : 'down'} · generation ${w.generation}`,
        ),
        el(
          'td',
          { 'data-testid': 'worker-running', 'data-job': w.running?.id },
          w.running ? `#${w.running.id} ${w.running.name}` : 'idle',
        ),
      ),
    ),
  );
}

function drawJobs(jobs, total) {
  $('jobs-empty').hidden = jobs.length > 0;
  $('jobs-count').textContent = total > jobs.length ? `(latest ${jobs.length} of ${total})` : '';
  $('jobs').replaceChildren(
    ...jobs.map((job) => {
      const row = el(
        'tr',
        { 'data-testid': 'job-row', 'data-job': job.id, class: job.id === page.selected ? 'selected' : '' },
        el('td', {}, job.id),
        el('td', {}, job.name),
        el('td', {}, stateBadge(job.state, 'job-state')),
        el('td', { 'data-testid': 'job-progress' }, ...progressCell(job)),
        el('td', { 'data-testid': 'job-loss' }, fixed(job.result?.metrics.loss ?? job.progress?.loss)),
        el('td', {}, job.workers.join(', ')),
        el('td', {}, time(job.submittedAt)),
      );
      row.addEventListener('click', () => select(job.id));
      return row;
    }),
  );
}

function progressCell(job) {
  const p = job.progress;
  if (!p) return [job.kind === 'run' ? 'run' : ''];
  // Progress is told every half second; a job that ended says how far it got in its result.
  const step = job.result?.steps ?? p.step;
  return [el('progress', { max: p.steps, value: step }), `${step}/${p.steps}`];
}

// ---- One job: its state, loss curve, placement, timeline and log ----

const refreshDetail = coalesced(async () => {
  if (page.selected === null) return;
  const id = page.selected;
  const detail = await api(`/api/jobs/${encodeURIComponent(id)}`);
  if (id === page.selected) drawDetail(detail);
});

function select(id) {
  page.selected = id;
  history.replaceState(null, '', `#job=${encodeURIComponent(id)}`);
  for (const row of document.querySelectorAll('#jobs tr'))
    row.classList.toggle('selected', row.dataset.job === id);
  void refreshDetail();
}

function drawDetail({ job, loss, placement, timeline, log }) {
  $('detail').hidden = false;
  $('detail-title').textContent = `#${job.id} ${job.name}`;
  const state = $('detail-state');
  state.className = `state ${job.state}`;
  state.textContent = job.state;
  const cancel = $('cancel');
  cancel.hidden = !LIVE_STATES.has(job.state);
  cancel.disabled = false;
  cancel.dataset.job = job.id;
  $('detail-summary').textContent = describe(job);
  drawLoss(job.id, loss);
  drawPlacement(placement);
  drawTimeline(timeline, job.id);
  $('log').replaceChildren(
    ...log.map((line) => el('li', { class: `log-${line.level}` }, `${time(line.at)} ${line.message}`)),
  );
}

function describe(job) {
  const parts = [`${job.kind} on ${job.device}`];
  if (job.workers.length > 0) parts.push(`workers ${job.workers.join(', ')}`);
  const p = job.progress;
  if (p)
    parts.push(
      `step ${job.result?.steps ?? p.step}/${p.steps}`,
      `epoch ${p.epoch + 1}`,
      `loss ${fixed(p.loss)}`,
      `${Math.round(p.samplesPerSecond)} samples/s`,
    );
  if (p && job.state === 'RUNNING') parts.push(`ETA ${duration(p.etaSeconds)}`);
  if (job.result) parts.push(`${duration(job.result.seconds)} in all`);
  if (job.reason) parts.push(job.reason);
  return parts.join(' · ');
}

/** The loss curve: made once per job, then given new data as it grows. */
function drawLoss(id, points) {
  const box = $('loss-chart');
  const data = [points.map((p) => p[0]), points.map((p) => p[1])];
  box.dataset.points = String(points.length);
  $('loss-empty').hidden = points.length > 0;
  if (page.chart && page.chartJob === id) {
    page.chart.setData(data);
    return;
  }
  page.chart?.destroy();
  box.replaceChildren();
  page.chartJob = id;
  page.chart = new uPlot(
    {
      width: Math.max(box.clientWidth, 300),
      height: CHART_HEIGHT,
      scales: { x: { time: false } },
      series: [
        { label: 'step' },
        {
          label: 'loss',
          stroke: '#2563eb',
          width: 2,
          points: { show: false },
          value: (_u, v) => (v === null ? '--' : fixed(v)),
        },
      ],
      axes: [{ label: 'step' }, { label: 'loss' }],
    },
    data,
    box,
  );
}

function drawPlacement(placement) {
  const box = $('placement');
  if (placement.workers.length === 0) {
    box.replaceChildren(el('p', { class: 'muted' }, 'Not placed yet: the job has not started.'));
    return;
  }
  box.replaceChildren(
    ...placement.workers.map((w) =>
      el(
        'div',
        { class: 'placement-worker', 'data-testid': 'placement-worker', 'data-worker': w.worker },
        el('strong', {}, w.worker),
        el('span', { class: 'muted' }, ` (${w.device})`),
        w.decisions.length > 0
          ? el('ul', {}, ...w.decisions.map((d) => el('li', {}, d)))
          : el('p', { class: 'muted' }, 'No placement decisions recorded for it.'),
      ),
    ),
  );
}

/** One lane per worker; each job a bar from its start to its end (or now), this job outlined. */
function drawTimeline(timeline, current) {
  const span = Math.max(timeline.to - timeline.from, 1);
  const at = (ms) => `${(100 * (ms - timeline.from)) / span}%`;
  const lanes = timeline.lanes.map((lane) => {
    const track = el('div', { class: 'timeline-track' });
    for (const s of lane.spans) {
      const end = s.end ?? timeline.to;
      const bar = el(
        'div',
        {
          class: `timeline-span ${s.state}${s.job === current ? ' current' : ''}`,
          title: `#${s.job} ${s.name}: ${time(s.start)} to ${s.end === null ? 'now' : time(s.end)} (${s.state})`,
          'data-testid': 'timeline-span',
          'data-job': s.job,
        },
        `#${s.job}`,
      );
      // Positions set through the style object, which the page's policy allows (style attributes in
      // markup it would not).
      bar.style.left = at(s.start);
      bar.style.width = `${(100 * (end - s.start)) / span}%`;
      track.append(bar);
    }
    return el(
      'div',
      { class: 'timeline-lane', 'data-testid': 'timeline-lane', 'data-worker': lane.worker },
      el('span', {}, lane.worker),
      track,
    );
  });
  $('timeline').replaceChildren(
    ...lanes,
    el(
      'div',
      { class: 'timeline-axis' },
      el('span', {}, time(timeline.from)),
      el('span', {}, time(timeline.to)),
    ),
  );
}

$('cancel').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await api(`/api/jobs/${encodeURIComponent(button.dataset.job)}/cancel`, { method: 'POST' });
    showProblem(null);
  } catch (e) {
    button.disabled = false;
    showProblem(e);
  }
  void refreshOverview();
  void refreshDetail();
});

window.addEventListener('resize', () => {
  page.chart?.setSize({ width: Math.max($('loss-chart').clientWidth, 300), height: CHART_HEIGHT });
});

// ---- Live: a note per change, and everything again after a reconnect ----

function connect() {
  const connection = $('connection');
  live = new EventSource('/api/live');
  live.addEventListener('open', () => {
    connection.dataset.state = 'live';
    connection.textContent = 'live';
    // Whatever happened while the stream was down is in what these fetch.
    void refreshOverview();
    void refreshDetail();
  });
  live.addEventListener('error', () => {
    connection.dataset.state = 'offline';
    connection.textContent = 'reconnecting';
  });
  live.addEventListener('message', (event) => {
    const change = JSON.parse(event.data);
    void refreshOverview();
    // Another job's progress or log changes nothing here; its start or end moves the timeline.
    if (change.job === page.selected || ['submitted', 'state', 'workers'].includes(change.type))
      void refreshDetail();
  });
}

const fromHash = /^#job=(.+)$/.exec(location.hash);
if (fromHash) select(decodeURIComponent(fromHash[1]));
void refreshOverview();
connect();
