// The page: ?model=es-en&variant=int8&threads=N (all optional). Loads the package from
// ./models/<model>/, then translates the text box, streaming greedy output as it is produced.
import { load, createGlobal } from './traductor.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const model = params.get('model') || 'es-en';
const variant = params.get('variant') || undefined; // the library picks int8 when the package has it
const threads = params.has('threads') ? Math.max(1, parseInt(params.get('threads'), 10) || 1) : undefined;
const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;

$('isolation').textContent = globalThis.crossOriginIsolated
  ? 'cross-origin isolated: yes (threads available)'
  : 'cross-origin isolated: no (one thread: serve with COOP/COEP headers for more)';

const loading = load(`./models/${encodeURIComponent(model)}/`, {
  variant,
  threads,
  onProgress: ({ phase, file, loaded, total }) => {
    if (total) $('progress').value = loaded / total;
    $('progress-text').textContent = phase === 'download' ? `downloading ${MB(loaded)} / ${MB(total)}`
      : phase === 'verify' ? `checking ${file} (sha256)`
        : phase === 'session' ? `starting ${file}` : phase;
  },
});
window.traductor = createGlobal(loading);

let controller = null;
let runs = 0;

async function run() {
  const tr = await loading;
  if (controller) controller.abort();
  controller = new AbortController();
  const signal = controller.signal;
  const beam = parseInt($('beam').value, 10);
  const out = $('target');
  const run = ++runs;
  out.textContent = '';
  out.classList.add('running');
  $('stats').textContent = beam === 1 ? 'translating…' : `translating (beam ${beam})…`;
  try {
    const r = await tr.translate($('source').value, {
      beam_size: beam, return_scores: true, signal,
      onText: beam === 1 ? (_piece, text, { tokens, ms }) => {
        const follow = out.scrollTop + out.clientHeight >= out.scrollHeight - 4; // keep the newest words in view
        out.textContent = text;
        if (follow) out.scrollTop = out.scrollHeight;
        $('stats').textContent = `translating… ${tokens} tokens, ${(tokens / (ms / 1000) || 0).toFixed(0)} tokens/s`;
      } : null,
    });
    out.textContent = r.text;
    const seconds = r.ms / 1000;
    $('stats').textContent = `${r.tokens_generated} tokens in ${seconds.toFixed(2)} s: ${(r.tokens_generated / seconds || 0).toFixed(0)} tokens/s`
      + ` (${beam === 1 ? 'greedy' : `beam ${beam}`}, ${tr.info.threads} thread${tr.info.threads > 1 ? 's' : ''})`;
  } catch (e) {
    if (signal.aborted) return;
    $('stats').innerHTML = '';
    $('stats').append(Object.assign(document.createElement('span'), { className: 'error', textContent: String(e.message || e) }));
  } finally {
    if (run === runs) out.classList.remove('running');
  }
}

loading.then((tr) => {
  const c = tr.config;
  $('model').textContent = `model ${model} (${c.source_language} → ${c.target_language}), variant ${tr.variant}, `
    + `${tr.info.threads} thread${tr.info.threads > 1 ? 's' : ''}; loaded ${MB(tr.info.downloadBytes)} in ${(tr.info.loadMs / 1000).toFixed(1)} s`
    + (tr.info.shortlistInPackage ? '; its vocabulary shortlist is not used here (whole vocabulary)' : '');
  $('source-label').textContent = `Source (${c.source_language})`;
  $('target-label').textContent = `Translation (${c.target_language})`;
  $('loading').hidden = true;
  $('app').hidden = false;
  let timer = null;
  $('source').addEventListener('input', () => {
    if (!$('live').checked) return;
    clearTimeout(timer);
    timer = setTimeout(run, 350);
  });
  $('go').addEventListener('click', run);
  $('beam').addEventListener('change', run);
  if (!params.has('noauto')) run();
}, (e) => {
  $('model').textContent = `model ${model}: could not be loaded`;
  $('progress-text').className = 'error';
  $('progress-text').textContent = String(e.message || e);
  console.error(e);
});
