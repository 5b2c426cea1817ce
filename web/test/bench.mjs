// Speed of the page in headless Chromium: load time, bytes downloaded, tokens/s (greedy and beam 4,
// one sentence at a time) per variant and thread count; optionally a screenshot mid-translation.
//
//   node web/test/bench.mjs --url http://127.0.0.1:8000/ --sentences s.json --out bench.json \
//        [--variants int8,fp32] [--threads 1,2] [--repeats 3] [--screenshot page.png]
//
// Each (variant, threads) runs in a fresh browser context (empty cache). web/test/bench.py runs this
// next to the Python runtime and writes benchmarks/results/web/results.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { launch, pageUrl } from './browser_test.mjs';

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function measure(browser, url, sentences, repeats) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(url);
  const ready = await page.evaluate(async () => {
    const t = await window.traductor.ready;
    const readyMs = performance.now(); // from navigation start: page, runtime, model, sessions
    const bytes = performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
      .reduce((s, e) => s + (e.encodedBodySize || 0), 0);
    return { readyMs, bytes, info: t.info, variant: t.variant, isolated: globalThis.crossOriginIsolated };
  });
  const runs = {};
  for (const beam of [1, 4]) {
    await page.evaluate(async ({ s, beam }) => { for (const x of s) await window.traductor.translate(x, { beam_size: beam }); }, { s: sentences.slice(0, 3), beam });
    const rates = [];
    for (let r = 0; r < repeats; r++) {
      rates.push(await page.evaluate(async ({ s, beam }) => {
        let tokens = 0;
        const t0 = performance.now();
        for (const x of s) tokens += (await window.traductor.translate(x, { beam_size: beam, return_scores: true })).tokens_generated;
        return tokens / ((performance.now() - t0) / 1000);
      }, { s: sentences, beam }));
    }
    runs[beam] = { median: median(rates), all: rates };
  }
  await context.close();
  return { ...ready, runs };
}

async function screenshot(browser, url, path, text) {
  const page = await browser.newPage({ viewport: { width: 860, height: 700 } });
  await page.goto(pageUrl(url, { noauto: '1' }));
  await page.evaluate(async (t) => { // warm up, as the page's own first translation does: wasm code tiers up
    for (let i = 0; i < 2; i++) await window.traductor.translate(t, { beam_size: 1 });
  }, text.slice(0, 400));
  await page.fill('#source', text);
  await page.$eval('#source', (el) => { el.scrollTop = 0; });
  await page.click('#go');
  await page.waitForFunction(() => document.querySelector('#target').textContent.length > 300);
  await page.screenshot({ path, animations: 'disabled' }); // the caret shown, not mid-blink
  await page.waitForFunction(() => !document.querySelector('#target').classList.contains('running'), null, { timeout: 120000 });
  await page.close();
}

async function main() {
  const { values } = parseArgs({ options: {
    url: { type: 'string' }, sentences: { type: 'string' }, out: { type: 'string' }, variants: { type: 'string', default: 'int8,fp32' },
    threads: { type: 'string', default: '1,2' }, repeats: { type: 'string', default: '3' }, screenshot: { type: 'string' },
  } });
  const sentences = JSON.parse(readFileSync(values.sentences, 'utf8'));
  const browser = await launch();
  const results = { browser: browser.version(), runs: [] };
  try {
    if (values.screenshot) await screenshot(browser, values.url, values.screenshot, sentences.slice(0, 16).join(' '));
    for (const variant of values.variants.split(',').filter(Boolean)) {
      for (const threads of values.threads.split(',')) {
        const url = pageUrl(values.url, { variant, threads, noauto: '1' });
        const r = await measure(browser, url, sentences, Number(values.repeats));
        results.runs.push({ variant, threads: Number(threads), ...r });
        console.error(`${variant} threads ${threads} (isolated ${r.isolated}, ort threads ${r.info.threads}): ready in ${(r.readyMs / 1000).toFixed(2)} s, `
          + `${(r.bytes / 1e6).toFixed(1)} MB; greedy ${r.runs[1].median.toFixed(0)} tokens/s, beam 4 ${r.runs[4].median.toFixed(0)} tokens/s`);
      }
    }
  } finally {
    await browser.close();
  }
  writeFileSync(values.out, JSON.stringify(results, null, 1));
}

main().catch((e) => { console.error(e); process.exit(1); });
