/**
 * `tcptrace export -f html` in a real browser (Debian's chromium, driven by
 * playwright-core): the page of the committed recording (a real trace of
 * test/fixtures/leaky_server.c) gets ready, its leak table is `report -f
 * json`'s leaks, CLOSE_WAIT lanes are drawn red, a click on a group shows its
 * sockets and a click on a socket its facts and transitions; it asks nothing of
 * the network and logs no error. As root, a fresh recording with stacks: the
 * clicked socket shows the accept path. A synthetic 100,000-socket timeline fed
 * straight to HtmlTimeline gets ready in bounded time and draws rows when
 * scrolled to the bottom.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { HtmlTimeline } from '../src/export/html.js';
import { COUNTER_SERIES, type CounterSeries, type SocketLife, type TimelineContext } from '../src/export/timeline.js';
import type { LeakGroup } from '../src/analysis/leaks.js';
import type { ReportDoc } from '../src/analysis/report-doc.js';
import type { Frame } from '../src/stacks/types.js';
import type { SessionEnd, SessionInfo } from '../src/trace/types.js';
import { readRecording } from './helpers/recording.js';
import { buildC, FIXTURES, needKernelBtf, needRoot, ROOT, runClient, runTcptrace, sleep, startServer, startTcptrace, WORK, type Server } from './helpers/proc.js';

const CHROMIUM = '/usr/bin/chromium';
const noBrowser = existsSync(CHROMIUM) ? null : `${CHROMIUM} missing: apt-get install chromium (scripts/setup.sh installs it)`;
const fixture = join(FIXTURES, 'recorded/leaky-server.tcptrace');
/** CLOSE_WAIT's colour in the page's palette */
const RED = [0xd1, 0x24, 0x2f];

interface Opened {
  page: Page;
  readyMs: number;
  requests: string[];
  errors: string[];
}

let browser: Browser | null = null;

async function open(file: string, readyWithinMs: number): Promise<Opened> {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // a fresh context per page: its own empty profile
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  const t0 = performance.now();
  await page.goto(`file://${file}`);
  await page.waitForFunction(() => (window as any).__tcptrace?.ready === true, null, { timeout: readyWithinMs });
  const readyMs = performance.now() - t0;
  assert.equal(await page.evaluate(() => document.body.dataset.ready), '1');
  return { page, readyMs, requests, errors };
}

after(async () => {
  await browser?.close();
});

/** pixels of the swimlane canvas within `tol` of rgb */
function countColour(page: Page, rgb: number[], tol = 10): Promise<number> {
  return page.evaluate(
    ([rgb, tol]) => {
      const c = document.getElementById('lane-canvas') as HTMLCanvasElement;
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i] - rgb[0]) <= tol && Math.abs(px[i + 1] - rgb[1]) <= tol && Math.abs(px[i + 2] - rgb[2]) <= tol) n++;
      return n;
    },
    [rgb, tol] as [number[], number],
  );
}

interface Row {
  socket: number;
  header: string | null;
  kind: string | null;
  leak: number;
  label: string;
  x: number;
  y: number;
  plotX: number;
}
const rows = (page: Page) => page.evaluate(() => (window as any).__tcptrace.rows() as Row[]);

/** clicks a leak group's row in the table, then its first socket in the swimlane; returns the panel's text */
async function clickLeakSocket(page: Page, group: number): Promise<{ row: Row; panel: string; shown: Row[] }> {
  await page.click(`#leaks tbody.group[data-leak="${group}"] tr.row`);
  const shown = (await rows(page)).filter((r) => r.socket >= 0);
  const row = shown[0];
  await page.mouse.click(row.x, row.y);
  await page.waitForFunction(() => document.querySelector('#panel-body .name') !== null, null, { timeout: 5000 });
  return { row, panel: await page.locator('#panel-body').innerText(), shown };
}

async function screenshot(page: Page, name: string, docs: boolean): Promise<void> {
  const out = join(WORK, name);
  await page.screenshot({ path: out, fullPage: true });
  assert.ok(statSync(out).size > 10_000, 'the screenshot has content');
  // kept past the test's work directory, as its artifact (CI can collect the directory)
  const artifacts = process.env.TCPTRACE_ARTIFACTS ?? join(tmpdir(), 'tcptrace-artifacts');
  mkdirSync(artifacts, { recursive: true });
  copyFileSync(out, join(artifacts, name));
  if (docs && process.env.TCPTRACE_SCREENSHOT === '1') {
    mkdirSync(join(ROOT, 'docs/images'), { recursive: true });
    copyFileSync(out, join(ROOT, 'docs/images/export-html.png'));
  }
}

function assertOffline(o: Opened): void {
  const away = o.requests.filter((u) => !/^(file|data):/.test(u));
  assert.deepEqual(away, [], 'every request the page made is file: or data:');
  assert.deepEqual(o.errors, [], 'no console errors');
}

describe('the HTML page of the committed recording', { skip: noBrowser ?? false }, () => {
  const out = join(WORK, 'leaky.html');
  let report: any;
  let o: Opened;

  before(async () => {
    const r = await runTcptrace(['export', fixture, '-f', 'html', '-o', out, '--leak-after', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /wrote .*leaky\.html .*8 sockets, 2 leak groups.*open it in a browser/);
    const rep = await runTcptrace(['report', fixture, '-f', 'json', '--leak-after', '1']);
    assert.equal(rep.code, 0, rep.stderr);
    report = JSON.parse(rep.stdout);
    o = await open(out, 20_000);
    console.log(`fixture page: ${(statSync(out).size / 1024).toFixed(1)} KiB, ready in ${o.readyMs.toFixed(0)} ms`);
  });

  test('one file that forbids the network, with uPlot and the data inline', () => {
    const html = readFileSync(out, 'utf8');
    assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`));
    assert.match(html, /<script type="application\/json" id="tcptrace-data">\{"encoding":"gzip\+base64","data":"[A-Za-z0-9+/=]+"\}<\/script>/);
    assert.ok(html.includes('uPlot'), 'uPlot is inlined');
    assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)="(?!data:)/, 'no external script, style or image');
  });

  test('the page gets ready, and says what was recorded', async () => {
    const api = await o.page.evaluate(() => ({ sockets: (window as any).__tcptrace.sockets, leaks: (window as any).__tcptrace.leaks }));
    assert.equal(api.sockets, 8);
    assert.deepEqual(api.leaks.map((g: any) => g.count), report.leaks.map((g: any) => g.count));
    const facts = await o.page.locator('#facts').innerText();
    for (const s of [report.host, report.kernel, report.attach.mode, '8 sockets', '5 sockets leaked']) assert.ok(facts.includes(s), `header "${facts}" lacks ${s}`);
    assert.ok(facts.includes(report.startedAt.slice(0, 19).replace('T', ' ')), `header "${facts}" gives the start time ${report.startedAt}`);
  });

  test('the leak table is report -f json\'s leaks, row by row', async () => {
    const table = await o.page.$$eval('#leaks tbody.group', (els) =>
      els.map((e) => ({ count: Number((e as HTMLElement).dataset.count), origin: (e as HTMLElement).dataset.origin, pid: Number((e as HTMLElement).dataset.pid), text: (e.querySelector('tr.row') as HTMLElement).innerText })),
    );
    assert.ok(report.leaks.length >= 2);
    assert.deepEqual(
      table.map(({ count, origin, pid }) => ({ count, origin, pid })),
      report.leaks.map((g: any) => ({ count: g.count, origin: g.origin, pid: g.pid })),
    );
    table.forEach((row, i) => {
      const cells = row.text.split('\t').map((s) => s.trim());
      assert.equal(cells[1], String(report.leaks[i].count), `row ${i + 1} shows its count`);
      assert.equal(cells[4], report.leaks[i].origin);
      assert.ok(cells[5].includes(String(report.leaks[i].pid)));
    });
  });

  test('CLOSE_WAIT lanes are drawn red', async () => {
    const red = await countColour(o.page, RED);
    assert.ok(red > 500, `${red} CLOSE_WAIT-red pixels on the swimlane`);
  });

  test('a click on a group shows its sockets, a click on a socket its facts and transitions', async () => {
    const g = report.leaks.findIndex((x: any) => x.origin === 'accept');
    const { row, panel, shown } = await clickLeakSocket(o.page, g);
    assert.equal(shown.length, report.leaks[g].count, 'the swimlane shows the group\'s sockets only');
    assert.ok(shown.every((r) => r.leak === g && r.kind === 'leaked'));
    const sock = report.leaks[g].sockets.find((s: any) => panel.includes(s.remote));
    assert.ok(sock, `the panel names one of the group's sockets: ${panel}`);
    assert.ok(row.label.startsWith(`fd ${sock.fd} `), row.label);
    assert.match(panel, new RegExp(`fd\\s+${sock.fd}\\n`));
    assert.ok(panel.includes(sock.local), 'the local address');
    assert.match(panel, /origin\s+accept/);
    assert.match(panel, /leaky_server \(pid \d+\)/);
    assert.match(panel, /in CLOSE_WAIT\s+1\.2\d\d s/, 'its time in CLOSE_WAIT');
    assert.match(panel, /open at the end/);
    // the transitions, in order, CLOSE_WAIT last and open
    const states = await o.page.$$eval('#panel-body table.transitions tr td:first-child', (tds) => tds.map((td) => (td as HTMLElement).innerText.trim()));
    assert.deepEqual(states, ['SYN_RECV', 'ESTABLISHED', 'CLOSE_WAIT']);
    assert.match(panel, /CLOSE_WAIT\s+[\d.]+ s\s+≥ 1\.2\d\d s open/);
    assert.match(panel, /accept\s+[\d.]+ s\s+\d+\s+\d+/, 'its accept() call');
    // the committed recording holds no stacks
    assert.match(panel, /STACKS\n(this recording has no stacks|none captured for this socket)/);
    await screenshot(o.page, 'export-html-fixture.png', needRoot() !== null);
  });

  test('a drag on the chart zooms the swimlane, a drag on the swimlane zooms both', async () => {
    const page = o.page;
    const full = await page.evaluate(() => (window as any).__tcptrace.view() as number[]);
    const over = (await page.locator('#chart .u-over').boundingBox())!;
    await page.mouse.move(over.x + over.width * 0.25, over.y + over.height / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width * 0.5, over.y + over.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction((w) => (window as any).__tcptrace.view()[1] - (window as any).__tcptrace.view()[0] < w * 0.5, full[1] - full[0], { timeout: 5000 });
    const zoomed = await page.evaluate(() => (window as any).__tcptrace.view() as number[]);
    const span = full[1] - full[0];
    assert.ok(Math.abs(zoomed[0] - (full[0] + span * 0.25)) < span * 0.02 && Math.abs(zoomed[1] - (full[0] + span * 0.5)) < span * 0.02, `chart zoom ${zoomed} of ${full}`);
    // the swimlane's time area lines up with the chart's: a drag over its left half halves the range again
    const lane = (await page.locator('#lane-canvas').boundingBox())!;
    const rowsNow = await rows(page);
    const y = rowsNow[rowsNow.length - 1].y;
    await page.mouse.move(rowsNow[0].plotX + 2, y);
    await page.mouse.down();
    await page.mouse.move(rowsNow[0].plotX + (lane.x + lane.width - rowsNow[0].plotX) / 2, y, { steps: 5 });
    await page.mouse.up();
    const again = await page.evaluate(() => (window as any).__tcptrace.view() as number[]);
    assert.ok(again[1] - again[0] < (zoomed[1] - zoomed[0]) * 0.6, `lane zoom ${again} of ${zoomed}`);
    const chartView = await page.evaluate(() => (window as any).__tcptrace.chartView() as number[]);
    assert.ok(Math.abs(chartView[0] - again[0]) < 1e3 && Math.abs(chartView[1] - again[1]) < 1e3, `the chart follows: ${chartView} against ${again}`);
    await page.click('#lane-reset');
    assert.deepEqual(await page.evaluate(() => (window as any).__tcptrace.view() as number[]), full);
  });

  test('it asked nothing of the network and logged no error', () => {
    assertOffline(o);
  });
});

describe('the HTML page of a recording with stacks', { skip: noBrowser ?? needRoot() ?? needKernelBtf() ?? false }, () => {
  let server: Server;
  let report: any;
  let o: Opened;
  const rec = join(WORK, 'stacks.tcptrace');
  const out = join(WORK, 'stacks.html');

  before(async () => {
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    runClient(server.port, 'leak', 2); // leaks that predate the trace
    const t = startTcptrace(['record', '-o', rec, '--pid', String(server.pid)]);
    await t.ready;
    runClient(server.port, 'leak', 3);
    runClient(server.port, 'ok', 3, true);
    await sleep(1300); // past --leak-after
    const r = await t.stop('SIGINT');
    assert.equal(r.code, 0, r.stderr);
    const e = await runTcptrace(['export', rec, '-f', 'html', '-o', out, '--leak-after', '1']);
    assert.equal(e.code, 0, e.stderr);
    report = JSON.parse((await runTcptrace(['report', rec, '-f', 'json', '--leak-after', '1'])).stdout);
    o = await open(out, 20_000);
  });
  after(() => server?.stop());

  test('a leaked socket shows the accept path that acquired it', async () => {
    const g = report.leaks.findIndex((x: any) => x.origin === 'accept');
    assert.ok(g >= 0, JSON.stringify(report.leaks.map((x: any) => x.origin)));
    const acquire: string[] = report.leaks[g].stacks.acquire.map((f: any) => f.symbol);
    assert.ok(acquire.includes('serve_clients'), acquire.join(' < '));
    const { panel } = await clickLeakSocket(o.page, g);
    const stack = panel.slice(panel.indexOf('STACKS'));
    assert.match(stack, /accept at [\d.]+ s/, 'the acquire stack, titled by its call');
    // every frame of the report's acquire stack, in order
    let at = 0;
    for (const name of acquire.filter(Boolean)) {
      const i = stack.indexOf(name, at);
      assert.ok(i >= 0, `frame ${name} in ${stack}`);
      at = i + name.length;
    }
    assert.match(stack, /leaky_server\.c:\d+/, 'file:line');
    // the table's group names its code path and keeps the full stacks
    const row = await o.page.locator(`#leaks tbody.group[data-leak="${g}"]`).innerText();
    assert.ok(row.includes('serve_clients'), row);
    await o.page.click(`#leaks tbody.group[data-leak="${g}"] summary`);
    const details = await o.page.locator(`#leaks tbody.group[data-leak="${g}"] details`).innerText();
    assert.ok(details.includes('accept4') || details.includes('serve_clients'));
    await o.page.click(`#leaks tbody.group[data-leak="${g}"] tr.row`); // the whole recording again
    assert.ok((await countColour(o.page, RED)) > 500);
    await screenshot(o.page, 'export-html-stacks.png', true);
    assertOffline(o);
  });
});

// ---- scale --------------------------------------------------------------------------

const FRAMES: Frame[] = [
  { addr: '0x7f0000001000', symbol: 'accept4', offset: 0x11, module: '/usr/lib/x86_64-linux-gnu/libc.so.6', moduleOffset: '0x1000', file: '../sysdeps/unix/sysv/linux/accept4.c', line: 31 },
  { addr: '0x401200', symbol: 'serve_clients', offset: 0x40, module: '/srv/orders', moduleOffset: '0x1200', file: '/src/orders/server.c', line: 52 },
  { addr: '0x401400', symbol: 'main', offset: 0x20, module: '/srv/orders', moduleOffset: '0x1400', file: '/src/orders/server.c', line: 90 },
];

/** a synthetic day at a busy server: n short connections on 4 processes, some leaked, some closed late, active and passive closes */
async function synthetic(out: string, n: number): Promise<{ sink: HtmlTimeline; leaked: number }> {
  const base = 5_000_000_000_000;
  const gap = 60_000; // a new connection every 60 µs: 6 s for 100,000
  const endNs = base + n * gap + 2e9;
  // the committed recording's session, moved to the synthetic clock
  const recorded = (await readRecording(fixture)).info;
  const info: SessionInfo = { ...recorded, host: 'synthetic', selectors: { pids: null, children: false }, clock: { monotonicNs: BigInt(base), wallNs: 1_700_000_000_000_000_000n }, startedNs: BigInt(base) };
  const ctx: TimelineContext = { info, stacks: new Map([[1, FRAMES]]), leakAfterMs: 1000, from: -Infinity, to: Infinity };
  const sink = new HtmlTimeline(out);
  sink.begin(ctx);
  const changes: [number, number, CounterSeries, number][] = [];
  let leaked = 0;
  for (let i = 0; i < n; i++) {
    const pid = 2000 + (i % 4);
    const s = base + i * gap;
    const active = i % 3 === 0;
    const leak = !active && i % 997 === 1;
    const late = !active && !leak && i % 211 === 2;
    let end: number | null = s + 2e6 + (i % 50) * 1e5;
    const states = [{ ts: s, state: 3 }, { ts: s + 40_000, state: 1 }];
    let closeWaitNs: number | null = null;
    if (active) states.push({ ts: end - 300_000, state: 4 }, { ts: end - 200_000, state: 5 });
    else {
      const fin = end - 400_000;
      states.push({ ts: fin, state: 8 });
      if (late) end = fin + 1.5e9;
      if (leak) end = null;
      else states.push({ ts: end - 50_000, state: 9 });
      closeWaitNs = (end === null ? endNs : end - 50_000) - fin;
    }
    const fd = 10 + (i % 1000);
    const life: SocketLife = {
      serial: i, pid, comm: `orders-${i % 4}`, fd, origin: 'accept', family: 2, netns: 1,
      local: '10.0.0.1:8080', remote: `10.1.${(i >> 16) & 255}.${(i >> 8) & 255}:${1024 + (i % 60000)}`,
      preexisting: false, start: s, states,
      calls: [{ ts: s + 50_000, kind: 'accept', fd, pid, stackId: 1 }, { ts: s + 100_000, kind: 'first write', fd: -1, pid: 0 }],
      stacks: { acquire: 1 }, end, timeWaitEnd: active && end !== null ? end + 60e9 : null, closeWaitNs, clamped: 0,
      kind: leak ? 'leaked' : late ? 'late' : 'closed', leak: leak ? 0 : -1, sharedWith: [],
    };
    if (end !== null) life.calls.push({ ts: end - 60_000, kind: 'close', fd, pid });
    else leaked++;
    changes.push([s, pid, 'open', 1], [s + 40_000, pid, 'ESTABLISHED', 1], [states[2].ts, pid, 'ESTABLISHED', -1]);
    if (!active) changes.push([states[2].ts, pid, 'CLOSE_WAIT', 1]);
    if (end !== null) {
      changes.push([end, pid, 'open', -1]);
      if (!active) changes.push([end - 50_000, pid, 'CLOSE_WAIT', -1]);
      else if (end + 60e9 < endNs) changes.push([end + 60e9, pid, 'TIME_WAIT', -1]);
      if (active) changes.push([end, pid, 'TIME_WAIT', 1]);
    }
    sink.socket(life);
  }
  changes.sort((a, b) => a[0] - b[0]);
  const values = new Map<string, number>();
  for (const [ts, pid, series, by] of changes) {
    const key = `${pid} ${series}`;
    const v = (values.get(key) ?? 0) + by;
    values.set(key, v);
    sink.counter(ts, pid, `orders-${pid % 4}`, series, v);
  }
  assert.equal(COUNTER_SERIES.length, 4);
  const group: LeakGroup = {
    pid: 2001, comm: 'orders-1', state: 'CLOSE_WAIT', origin: 'accept', count: leaked, oldestMs: 7900, medianMs: 4000, ageSince: 'transition',
    stacks: { acquire: FRAMES, io: null, read: null, eof: null }, notes: [], peers: [{ addr: '10.1.0.1', count: leaked }], sockets: [],
  };
  sink.leakGroups([group], endNs);
  const end: SessionEnd = { endedNs: BigInt(endNs), reason: 'duration', exitedPids: [], counters: {} as SessionEnd['counters'] };
  const report = { counts: { lost: 0, missedInKernel: 0, droppedInAgent: 0 }, warnings: [], states: {}, leaks: [group] } as unknown as ReportDoc;
  await sink.finish({ end, report, endNs, sockets: n, filteredSockets: 0 });
  return { sink, leaked };
}

describe('a synthetic 100,000-socket timeline', { skip: noBrowser ?? false }, () => {
  test('gets ready in bounded time, and draws rows when scrolled to the bottom', async () => {
    const n = 100_000;
    const dir = mkdtempSync(join(WORK, 'scale-'));
    const out = join(dir, 'big.html');
    const t0 = performance.now();
    const { sink, leaked } = await synthetic(out, n);
    const exportMs = performance.now() - t0;
    const size = statSync(out).size;
    assert.equal(sink.stats.sockets, n);
    assert.ok(size < 16 << 20, `${size} bytes`);
    const o = await open(out, 60_000);
    console.log(`100,000 sockets: exported in ${exportMs.toFixed(0)} ms, ${(size / 1048576).toFixed(2)} MiB (${(sink.stats.rawBytes / 1048576).toFixed(1)} MiB before gzip), page ready in ${o.readyMs.toFixed(0)} ms`);
    const api = await o.page.evaluate(() => ({ sockets: (window as any).__tcptrace.sockets, leaks: (window as any).__tcptrace.leaks }));
    assert.equal(api.sockets, n);
    assert.equal(api.leaks[0].count, leaked);
    assert.ok((await countColour(o.page, RED)) > 500, 'the leaks, first, are drawn red');
    // to the bottom: the last rows are drawn, and only the rows in view
    const draw = await o.page.evaluate(
      () =>
        new Promise<any>((resolve) => {
          const lane = document.getElementById('lane')!;
          lane.scrollTop = lane.scrollHeight;
          requestAnimationFrame(() => requestAnimationFrame(() => resolve({ ...(window as any).__tcptrace.lastDraw, max: lane.scrollHeight - lane.clientHeight })));
        }),
    );
    assert.ok(draw.scrollTop > 0 && draw.scrollTop >= draw.max - 1, `scrolled to ${draw.scrollTop} of ${draw.max}`);
    assert.equal(draw.last, draw.rows - 1, 'the last row is in view');
    assert.ok(draw.drawn > 10 && draw.drawn < 200, `${draw.drawn} sockets drawn`);
    assert.ok(draw.ms < 100, `a frame took ${draw.ms} ms`);
    const shown = (await rows(o.page)).filter((r) => r.socket >= 0);
    assert.ok(shown.length > 10 && shown.every((r) => r.kind === 'closed'), 'the bottom holds closed sockets');
    const drawnPixels = await o.page.evaluate(() => {
      const c = document.getElementById('lane-canvas') as HTMLCanvasElement;
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200) n++;
      return n;
    });
    assert.ok(drawnPixels > 2000, `${drawnPixels} drawn pixels at the bottom`);
    // a click on the group filters 100,000 sockets to its own
    const t1 = performance.now();
    const { shown: members, panel } = await clickLeakSocket(o.page, 0);
    console.log(`100,000 sockets: leak filter and panel in ${(performance.now() - t1).toFixed(0)} ms`);
    assert.ok(members.length > 10 && members.every((r) => r.leak === 0));
    assert.match(panel, /serve_clients/);
    await screenshot(o.page, 'export-html-100k.png', false);
    assertOffline(o);
  });
});
