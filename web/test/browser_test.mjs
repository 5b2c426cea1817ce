// Drive the page in Debian's headless Chromium (playwright-core, no browser download) and translate
// cases with each model package and variant; write what the page produced (token ids and text) as JSON.
//
//   node web/test/browser_test.mjs --url http://127.0.0.1:8000/ --cases cases.json --out out.json [--threads 1]
//
// cases.json: {"runs": [{"model": "es-en", "variant": "int8",
//                        "cases": [{"text": str, "options": {"beam_size": 1, ...}}, ...],
//                        "batches": [{"texts": [str, ...], "options": {...}}, ...],
//                        "load_errors": [{"model": str, "variant": str}, ...]}, ...]}
// A case is translated through window.traductor.translate(text, options); a greedy case (beam_size 1)
// a second time streamed (onText), as the page does. A batch is one translate(texts) call. A
// load_errors entry loads a package that must be refused and reports the error.
// tests/test_web.py computes the Python runtime's ids for the same cases and compares.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return chromium.launch({ executablePath: CHROMIUM, args: root ? ['--no-sandbox'] : [] });
}

/** Open the page and wait for the model: resolves to [page, info]. */
export async function openPage(browser, url, log = () => {}) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  await page.goto(url);
  const info = await page.evaluate(async () => {
    const t = await window.traductor.ready;
    return { ...t.info, variant: t.variant, model: t.name, crossOriginIsolated: globalThis.crossOriginIsolated };
  });
  return [page, info];
}

export function pageUrl(base, params) {
  const url = new URL(base);
  url.search = new URLSearchParams(params).toString();
  return url.href;
}

async function main() {
  const { values } = parseArgs({ options: {
    url: { type: 'string' }, cases: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string', default: '1' },
  } });
  const spec = JSON.parse(readFileSync(values.cases, 'utf8'));
  const browser = await launch();
  const report = { runs: [], log: [] };
  const log = (s) => { report.log.push(s); console.error(s); };
  try {
    for (const run of spec.runs) {
      const t0 = Date.now();
      const url = pageUrl(values.url, { model: run.model, variant: run.variant, threads: values.threads, noauto: '1' });
      let page, info;
      try {
        [page, info] = await openPage(browser, url, log);
      } catch (e) {
        log(`${run.model} ${run.variant}: the page did not load the model: ${e.message}`);
        report.runs.push({ model: run.model, variant: run.variant, error: String(e.message) });
        continue;
      }
      const loadMs = Date.now() - t0;
      const cases = [];
      for (const c of run.cases) {
        cases.push(await page.evaluate(async ({ text, options }) => {
          try {
            const r = await window.traductor.translate(text, { ...options, return_scores: true });
            const out = { ids: r.hypotheses[0].ids, text: r.text, segments_out: r.hypotheses[0].segments };
            if (options.beam_size === 1) { // the page's streaming path: the same ids, and the pieces add up to the text
              let streamed = '';
              const s = await window.traductor.translate(text, { ...options, return_scores: true, onText: (piece) => { streamed += piece; } });
              Object.assign(out, { stream_ids: s.hypotheses[0].ids, stream_text: s.text, streamed,
                segments: await window.traductor.segments(text, options) });
            }
            return out;
          } catch (e) {
            return { error: String(e.message || e) };
          }
        }, c));
      }
      const batches = [];
      for (const b of run.batches || []) {
        batches.push(await page.evaluate(async ({ texts, options }) => {
          const rs = await window.traductor.translate(texts, { ...options, return_scores: true });
          return rs.map((r) => ({ ids: r.hypotheses[0].ids, text: r.text }));
        }, b));
      }
      const loadErrors = [];
      for (const l of run.load_errors || []) { // packages that must be refused, loaded from this page
        loadErrors.push(await page.evaluate(async ({ model, variant }) => {
          try {
            await window.traductor.load(`./models/${model}/`, { variant });
            return null;
          } catch (e) {
            return `${e.name}: ${e.message}`;
          }
        }, l));
      }
      report.runs.push({ model: run.model, variant: run.variant, info, loadMs, ms: Date.now() - t0, cases, batches, loadErrors });
      log(`${run.model} ${run.variant}: loaded in ${loadMs} ms; ${run.cases.length} cases, ${batches.length} batches in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await page.close();
    }
  } finally {
    await browser.close();
  }
  writeFileSync(values.out, JSON.stringify(report));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
