// traductor in the browser: a traductor model package on onnxruntime-web (wasm), with the Python
// runtime's decoding contract (runtime/translator.py, search.py, decoder.py), token for token.
//
//   import { load } from './traductor.js';
//   const tr = await load('./models/es-en/', { variant: 'int8', onProgress: (p) => console.log(p) });
//   await tr.translate('Y dijo Dios: Sea la luz: y fué la luz.', { beam_size: 4 });
//   await tr.translate(text, { beam_size: 1, onText: (piece) => out.append(piece) });   // streamed
//
// This file is the public entry; the parts live in src/, one job each:
//   src/package.js    reading a package: manifest, config.json, files checked (size, sha256.js)
//   src/tokenizer.js  text cleaning, sentence splitting, tokenizers.js, texts -> source id lists
//   src/search.js     greedy and beam search (runtime/search.py)
//   src/model.js      the two graphs on onnxruntime-web, threads, the KV-cache step decoder
//   src/translator.js the Translator: options, batching, streaming, results
// The two imports src/ makes, 'onnxruntime-web/wasm' and '@huggingface/tokenizers', are bare
// specifiers: the page maps them with an import map (index.html), bundlers resolve them from
// node_modules.
import { now } from './src/clock.js';
import { createSessions } from './src/model.js';
import { fetchPackage } from './src/package.js';
import { readTokenizer } from './src/tokenizer.js';
import { Translator } from './src/translator.js';

export { InputError, ModelError, TraductorError } from './src/errors.js';
export { DEFAULT_THREADS, StepDecoder, canThread, defaultThreads, ort } from './src/model.js';
export { FORMAT, READABLE_VERSIONS, chooseVariant } from './src/package.js';
export { BeamSearch, GreedySearch, maxTargetLength, paddedLength } from './src/search.js';
export { cleanText, splitSentences } from './src/tokenizer.js';
export { Translator };
export const VERSION = '0.1.0';

/**
 * Load a model package from `baseUrl` (a directory URL: config.json, manifest.json, the tokenizer(s)
 * and the chosen variant's two graphs are read from it; each is checked against manifest.json's size
 * and sha256 before use).
 *
 * options: variant ('int8' | 'fp32' | ..., default: int8 when present), threads (onnxruntime-web's
 * numThreads; more than 1 needs cross-origin isolation), wasmPaths (where ort-wasm-*.{mjs,wasm} are
 * served; default: node_modules/onnxruntime-web/dist/ beside this file), onProgress(p) with
 * p = {phase: 'config'|'download'|'verify'|'session'|'ready', file, loaded, total} (bytes over the
 * whole download), fetch (a fetch function).
 */
export async function load(baseUrl, options = {}) {
  const t0 = now();
  const pkg = await fetchPackage(baseUrl, options);
  const { config, total } = pkg;
  const tokenizers = Object.fromEntries(pkg.tokenizers.map(([name, bytes]) => [name, readTokenizer(name, bytes)]));
  const progress = options.onProgress || (() => {});
  const sessions = await createSessions([pkg.encoder, pkg.decoder], options,
    (file) => progress({ phase: 'session', file, loaded: total, total }));
  const tr = new Translator({
    baseUrl: pkg.base, config, variant: pkg.variant, encoder: sessions.encoder, decoder: sessions.decoder,
    tokenizer: tokenizers[config.tokenizers.source], targetTokenizer: tokenizers[config.tokenizers.target],
    info: { threads: sessions.threads, crossOriginIsolated: !!globalThis.crossOriginIsolated, downloadBytes: total,
      downloadMs: pkg.downloadMs, loadMs: 0, files: pkg.files,
      // A package's vocabulary shortlist (format 8) is not used here: every step scores the whole
      // vocabulary, as the Python runtime with shortlist=False.
      shortlistInPackage: !!config.shortlist, shortlistUsed: false },
  });
  tr.info.loadMs = now() - t0;
  progress({ phase: 'ready', file: null, loaded: total, total });
  return tr;
}

/**
 * The page's global: `window.traductor = createGlobal(promiseOfTranslator)` gives
 * { ready, translate(text, opts), translateIds(seqs, opts), translator } where ready resolves to the
 * Translator once loaded and translate waits for it.
 */
export function createGlobal(loading) {
  const g = {
    ready: loading,
    translator: null,
    translate: async (text, options) => (await loading).translate(text, options),
    translateIds: async (seqs, options) => (await loading).translateIds(seqs, options),
    segments: async (text, options = {}) => { const t = await loading; return t.segments([text], t._options(options)); },
    load,
    VERSION,
  };
  loading.then((t) => { g.translator = t; }, () => {});
  return g;
}
