/**
 * The fleet view page: one self-contained document (inline CSS, inline script, SVG drawn by the
 * script), so it needs no asset step in the build and never fetches anything but its own server.
 * Every value from a device is put in with textContent, never as HTML: device names, reasons and
 * alert messages come from the field and must not be able to inject markup.
 *
 * `__NONCE__` is replaced per response; the Content-Security-Policy allows only that script.
 */
export const FLEET_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Elevator fleet</title>
<style nonce="__NONCE__">
  :root { --healthy: #1a7f37; --degraded: #b26a00; --unhealthy: #c62828; --unknown: #6b7280; --line: #d0d7de; --muted: #57606a; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa; }
  header { display: flex; flex-wrap: wrap; gap: 16px; align-items: baseline; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; padding: 16px 20px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
  section h2 { font-size: 15px; margin: 0 0 8px; }
  .wide { grid-column: 1 / -1; }
  .muted { color: var(--muted); }
  .badge { display: inline-block; min-width: 84px; text-align: center; padding: 2px 8px; border-radius: 12px; color: #fff; font-weight: 600; text-transform: uppercase; font-size: 12px; }
  .s-healthy { background: var(--healthy); } .s-degraded { background: var(--degraded); } .s-unhealthy { background: var(--unhealthy); } .s-unknown { background: var(--unknown); }
  .device { border-left: 6px solid var(--unknown); padding: 8px 10px; margin-bottom: 8px; background: #fafbfc; }
  .device[data-status="healthy"] { border-color: var(--healthy); } .device[data-status="degraded"] { border-color: var(--degraded); } .device[data-status="unhealthy"] { border-color: var(--unhealthy); }
  .device h3 { margin: 0 0 4px; font-size: 15px; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
  .reasons { margin: 4px 0; padding-left: 18px; } .reasons li { color: #6e4400; }
  .components { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
  .component { border: 1px solid var(--line); border-radius: 4px; padding: 2px 6px; font-size: 12px; background: #fff; }
  .component[data-state="ok"] { border-color: var(--healthy); } .component[data-state="warn"] { border-color: var(--degraded); background: #fff8e6; } .component[data-state="bad"] { border-color: var(--unhealthy); background: #ffebe9; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
  .sev-critical { color: var(--unhealthy); font-weight: 600; } .sev-warning { color: var(--degraded); font-weight: 600; } .cleared { opacity: .55; }
  .problems { background: #ffebe9; border-color: #ffb3ad; } .problems:empty { display: none; }
  .counters { display: flex; flex-wrap: wrap; gap: 14px; } .counters div b { display: block; font-size: 16px; }
  .chart { width: 100%; height: 150px; display: block; } .chart .axis { stroke: var(--line); } .chart text { font-size: 11px; fill: var(--muted); }
  #connection[data-state="live"] { color: var(--healthy); } #connection[data-state="reconnecting"] { color: var(--unhealthy); }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Elevator fleet</h1>
  <span>updated <time data-testid="last-update" id="last-update">never</time></span>
  <span id="connection" data-testid="connection" data-state="connecting">connecting</span>
  <span class="muted" id="ingest-state" data-testid="ingest-state"></span>
  <span class="muted" id="checker-state" data-testid="checker-state"></span>
</header>
<main>
  <section class="wide problems" id="problems" data-testid="problems"></section>
  <section>
    <h2>Devices <span class="muted" id="device-count"></span></h2>
    <div id="devices" data-testid="devices"><p class="muted">waiting for the first health message</p></div>
  </section>
  <section>
    <h2>Backlog (records not yet acknowledged)</h2>
    <svg class="chart" data-testid="chart-backlog" id="chart-backlog" viewBox="0 0 600 150" preserveAspectRatio="none" role="img" aria-label="backlog over time"></svg>
    <h2>Throughput (records archived per second)</h2>
    <svg class="chart" data-testid="chart-throughput" id="chart-throughput" viewBox="0 0 600 150" preserveAspectRatio="none" role="img" aria-label="throughput over time"></svg>
    <div class="counters" id="counters" data-testid="ingest"></div>
    <div id="ingest-instances" data-testid="ingest-instances"></div>
  </section>
  <section>
    <h2>Alerts and faults <span class="muted" id="alerts-updated"></span></h2>
    <div id="alerts" data-testid="alerts"><p class="muted">no alerts</p></div>
  </section>
  <section>
    <h2>Permanent gaps <span class="muted" id="gap-summary"></span></h2>
    <div id="gaps" data-testid="gaps"><p class="muted">no gaps</p></div>
  </section>
</main>
<script nonce="__NONCE__">
'use strict';
(function () {
  var HISTORY_MS = __HISTORY_MS__;
  var series = [];
  var SVG = 'http://www.w3.org/2000/svg';

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) {
      if (name === 'text') node.textContent = attrs[name];
      else if (attrs[name] !== null && attrs[name] !== undefined) node.setAttribute(name, attrs[name]);
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    return node;
  }
  function replace(id, nodes) {
    var target = document.getElementById(id);
    target.replaceChildren.apply(target, nodes);
  }
  function ago(sec) {
    if (sec === null || sec === undefined) return 'never';
    if (sec < 90) return sec + ' s ago';
    if (sec < 5400) return Math.round(sec / 60) + ' min ago';
    return Math.round(sec / 3600) + ' h ago';
  }
  function clock(iso) { return iso ? new Date(iso).toLocaleTimeString() : ''; }

  function componentTone(c) {
    if (c.lifecycle === 'BROKEN' || c.lifecycle === 'ERRORED') return 'bad';
    if (c.heartbeat === 'missing' || c.heartbeat === 'stale') return 'warn';
    if (c.lifecycle && c.lifecycle !== 'RUNNING' && c.lifecycle !== 'FINISHED') return 'warn';
    return 'ok';
  }
  function componentText(c) {
    var parts = [c.name];
    if (c.lifecycle) parts.push(c.lifecycle + (c.version ? ' ' + c.version : ''));
    if (c.heartbeat === 'missing') parts.push('no heartbeat');
    else if (c.heartbeat === 'stale') parts.push('heartbeat late (' + c.lastSeenSec + ' s)');
    else if (c.heartbeat === 'alive') parts.push('heartbeat ' + c.lastSeenSec + ' s');
    return parts.join(' · ');
  }

  function renderDevices(model) {
    document.getElementById('device-count').textContent = '(' + model.devices.length + ')';
    if (model.devices.length === 0) return replace('devices', [el('p', { class: 'muted', text: 'no device has reported health yet' })]);
    replace('devices', model.devices.map(function (d) {
      var facts = [];
      facts.push('health ' + ago(d.healthAgeSec) + (d.healthStale ? ' (stale: the status may be out of date)' : ''));
      if (d.backlogRecords !== null) facts.push('backlog ' + d.backlogRecords + ' records' + (d.backlogAgeSec ? ', oldest ' + d.backlogAgeSec + ' s' : ''));
      if (d.connection) facts.push(d.connection.status === 'online' ? 'connected' : 'OFFLINE since ' + clock(d.connection.offlineSince) + ' (' + d.connection.reason + ')');
      if (d.overallDeviceStatus) facts.push('nucleus ' + d.overallDeviceStatus);
      if (d.clockSkewed) facts.push('device clock is off');
      var reasons = d.reasons.length > 0
        ? el('ul', { class: 'reasons', 'data-testid': 'reasons-' + d.device }, d.reasons.map(function (r) { return el('li', { text: r }); }))
        : el('p', { class: 'muted', 'data-testid': 'reasons-' + d.device, text: d.status === 'unknown' ? 'no readable health message' : 'no reasons: all rules pass' });
      return el('div', { class: 'device', 'data-testid': 'device-' + d.device, 'data-status': d.status, 'data-stale': String(d.healthStale) }, [
        el('h3', {}, [el('span', { text: d.device }), el('span', { class: 'badge s-' + d.status, 'data-testid': 'status-' + d.device, text: d.status })]),
        el('div', { class: 'muted', text: facts.join(' · ') }),
        reasons,
        el('div', { class: 'components' }, d.components.map(function (c) {
          return el('span', { class: 'component', 'data-testid': 'component-' + d.device + '-' + c.name, 'data-state': componentTone(c), 'data-lifecycle': c.lifecycle, 'data-heartbeat': c.heartbeat, text: componentText(c) });
        })),
      ]);
    }));
  }

  function renderAlerts(model) {
    document.getElementById('alerts-updated').textContent = model.alertsUpdatedAt ? '(as of ' + clock(model.alertsUpdatedAt) + ')' : '';
    if (model.alerts.length === 0) return replace('alerts', [el('p', { class: 'muted', text: 'no alerts' })]);
    var rows = model.alerts.map(function (a) {
      return el('tr', { class: a.state === 'cleared' ? 'cleared' : null, 'data-testid': 'alert-' + a.alertId, 'data-owner': a.owner, 'data-severity': a.severity, 'data-state': a.state }, [
        el('td', { class: 'sev-' + a.severity, text: a.severity + (a.state === 'cleared' ? ' (cleared)' : '') }),
        el('td', { text: a.owner }),
        el('td', { text: a.device + (a.component ? ' / ' + a.component : '') + (a.stream ? ' / ' + a.stream : '') }),
        el('td', { text: a.kind + ': ' + a.message }),
        el('td', { class: 'muted', text: 'since ' + clock(a.since) }),
      ]);
    });
    replace('alerts', [el('table', {}, [el('thead', {}, [el('tr', {}, ['severity', 'owner', 'where', 'what', 'when'].map(function (h) { return el('th', { text: h }); }))]), el('tbody', {}, rows)])]);
  }

  function renderGaps(model) {
    document.getElementById('gap-summary').textContent = model.gapCount > 0 ? '(' + model.gapCount + ' ranges, ' + model.gapRecords + ' records; latest ' + model.gaps.length + ')' : '';
    if (model.gaps.length === 0) return replace('gaps', [el('p', { class: 'muted', text: 'no permanent gaps' })]);
    var rows = model.gaps.map(function (g) {
      return el('tr', { 'data-testid': 'gap', 'data-reason': g.reason }, [
        el('td', { text: g.device + ' / ' + g.stream }),
        el('td', { text: g.seqFrom === g.seqTo ? String(g.seqFrom) : g.seqFrom + '–' + g.seqTo }),
        el('td', { text: g.records + ' rec' }),
        el('td', { text: g.reason }),
        el('td', { class: 'muted', text: clock(g.receivedAt) }),
      ]);
    });
    replace('gaps', [el('table', {}, [el('thead', {}, [el('tr', {}, ['device / stream', 'seqs', 'size', 'reason', 'at'].map(function (h) { return el('th', { text: h }); }))]), el('tbody', {}, rows)])]);
  }

  function instanceState(i) {
    return i.stale ? 'NOT UPDATING (last ' + ago(i.ageSec) + ')' : i.connected === false ? 'disconnected from the broker' : 'running';
  }

  function renderInstances(model) {
    var instances = model.ingestInstances;
    if (instances.length === 0) return replace('ingest-instances', []);
    var rows = instances.map(function (i) {
      return el('tr', { 'data-testid': 'ingest-instance', 'data-stale': String(i.stale) }, [
        el('td', { text: i.instance }), el('td', { text: instanceState(i) }), el('td', { text: String(i.recordsArchived) + ' archived' }),
      ]);
    });
    replace('ingest-instances', [el('table', {}, [el('thead', {}, [el('tr', {}, ['ingest instance', 'state', 'since its start'].map(function (h) { return el('th', { text: h }); }))]), el('tbody', {}, rows)])]);
  }

  function renderChecker(model) {
    var c = model.checker;
    document.getElementById('checker-state').textContent = !c ? ''
      : 'integrity checker ' + (c.stale ? 'NOT UPDATING (last ' + ago(c.ageSec) + ')'
        : 'pass ' + c.passes + ' ' + ago(c.ageSec) + ': ' + c.openGapRecords + ' records in open gaps, ' + c.permanentGapRecords + ' in permanent gaps' + (c.passErrors ? ', ' + c.passErrors + ' failed passes' : ''));
  }

  function renderIngest(model) {
    var i = model.ingest;
    var dead = model.ingestInstances.filter(function (x) { return x.stale; });
    var instances = model.ingestInstances.length + ' instances' + (dead.length ? ', ' + dead.length + ' NOT UPDATING (' + dead.map(function (x) { return x.instance; }).join(', ') + ')' : ', all running');
    // Both kinds of status at once: one of them is probably left from a change of mode.
    document.getElementById('ingest-state').textContent = !i ? 'cloud ingest: no status yet'
      : model.ingestSource === 'group' ? 'cloud ingest: ' + instances
        : 'cloud ingest ' + instanceState(i) + (model.ingestInstances.length > 0 ? '; also ' + instances + ' (status files of a group: left from an earlier mode?)' : '');
    renderInstances(model);
    renderChecker(model);
    if (!i) return replace('counters', []);
    var figures = [['archived', i.recordsArchived], ['duplicates dropped', i.duplicatesDropped], ['rejected', i.rejectedTotal], ['invalid records', i.invalidTotal],
      ['backfill requests', i.backfillRequests], ['clock skew flags', i.clockSkewFlags], ['epoch loss', i.epochLoss], ['archive errors', i.archiveErrors]];
    replace('counters', figures.map(function (f) { return el('div', { 'data-testid': 'counter-' + f[0].replace(/ /g, '-') }, [el('b', { text: String(f[1]) }), el('span', { class: 'muted', text: f[0] })]); }));
  }

  function renderProblems(model) {
    if (model.problems.length === 0) return replace('problems', []);
    replace('problems', [el('h2', { text: 'Could not read everything' }), el('ul', {}, model.problems.map(function (p) { return el('li', { text: p.key + ': ' + p.problem }); }))]);
  }

  // A line per metric; a null value (no data) breaks the line instead of drawing a false zero.
  function drawChart(id, key, colour, unit) {
    var svg = document.getElementById(id);
    var W = 600, H = 150, left = 44, bottom = 18, top = 8;
    var now = series.length ? series[series.length - 1].t : Date.now();
    // The axis grows with the history up to HISTORY_MS, so a fresh start is not a sliver at the right edge.
    var span = Math.min(HISTORY_MS, Math.max(60000, series.length ? now - series[0].t : 0));
    var from = now - span;
    var values = series.map(function (p) { return p[key]; }).filter(function (v) { return v !== null; });
    var max = Math.max(1, Math.max.apply(null, values.concat([0])) * 1.1);
    var x = function (t) { return left + (W - left - 4) * (t - from) / span; };
    var y = function (v) { return top + (H - top - bottom) * (1 - v / max); };
    var nodes = [
      svgEl('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
      svgEl('line', { class: 'axis', x1: left, y1: top, x2: left, y2: H - bottom }),
    ];
    var label = function (text, ax, ay, anchor) { var t = svgEl('text', { x: ax, y: ay, 'text-anchor': anchor || 'start' }); t.textContent = text; return t; };
    nodes.push(label(String(Math.round(max)), left - 4, top + 10, 'end'), label('0', left - 4, H - bottom, 'end'));
    nodes.push(label(span < 120000 ? '-' + Math.round(span / 1000) + ' s' : '-' + Math.round(span / 60000) + ' min', left, H - 4), label('now', W - 4, H - 4, 'end'));
    var segment = [];
    var flush = function () {
      if (segment.length > 0) nodes.push(svgEl('polyline', { fill: 'none', stroke: colour, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', points: segment.join(' ') }));
      segment = [];
    };
    series.forEach(function (p) {
      if (p.t < from) return;
      if (p[key] === null) return flush();
      segment.push(x(p.t).toFixed(1) + ',' + y(p[key]).toFixed(1));
    });
    flush();
    var last = series.length ? series[series.length - 1][key] : null;
    nodes.push(label(last === null ? 'no data' : 'now ' + last + ' ' + unit, W - 4, top + 10, 'end'));
    svg.setAttribute('data-latest', last === null ? '' : String(last));
    svg.setAttribute('data-points', String(series.length));
    svg.replaceChildren.apply(svg, nodes);
  }

  function render(model) {
    document.getElementById('last-update').textContent = new Date(model.generatedAt).toLocaleTimeString();
    document.getElementById('last-update').setAttribute('datetime', model.generatedAt);
    renderProblems(model);
    renderDevices(model);
    renderIngest(model);
    renderAlerts(model);
    renderGaps(model);
    drawChart('chart-backlog', 'backlogRecords', '#0969da', 'records');
    drawChart('chart-throughput', 'archivedPerSec', '#8250df', 'rec/s');
  }

  function setConnection(state) {
    var node = document.getElementById('connection');
    node.setAttribute('data-state', state);
    node.textContent = state === 'live' ? '● live' : state === 'reconnecting' ? '● reconnecting…' : state;
  }

  // The browser's EventSource reconnects by itself; the server sends the whole history again on each connect.
  var events = new EventSource('/api/events');
  events.onopen = function () { setConnection('live'); };
  events.onerror = function () { setConnection('reconnecting'); };
  events.addEventListener('snapshot', function (e) {
    var data = JSON.parse(e.data);
    series = data.series;
    render(data.model);
  });
  events.addEventListener('update', function (e) {
    var data = JSON.parse(e.data);
    series.push(data.point);
    var oldest = data.point.t - HISTORY_MS;
    while (series.length > 0 && series[0].t < oldest) series.shift();
    render(data.model);
  });
})();
</script>
</body>
</html>
`;
