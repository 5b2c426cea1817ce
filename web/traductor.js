// traductor in the browser: a traductor model package on onnxruntime-web (wasm), with the Python
// runtime's decoding contract (runtime/translator.py, search.py, decoder.py), token for token.
//
//   import { load } from './traductor.js';
//   const tr = await load('./models/es-en/', { variant: 'int8', onProgress: (p) => console.log(p) });
//   await tr.translate('Y dijo Dios: Sea la luz: y fué la luz.', { beam_size: 4 });
//   await tr.translate(text, { beam_size: 1, onText: (piece) => out.append(piece) });   // streamed
//
// The two imports are bare specifiers: the page maps them with an import map (index.html), bundlers
// resolve them from node_modules.
import * as ort from 'onnxruntime-web/wasm';
import { Tokenizer } from '@huggingface/tokenizers';

export { ort };
export const VERSION = '0.1.0';
export const FORMAT = 'traductor-model';
export const READABLE_VERSIONS = [5, 6];
// One thread unless asked: decoding one sentence is many small steps, and on the machine measured
// (benchmarks/results/web/results.md) a second thread made greedy and beam 4 slower; the Python runtime
// also keeps runs under 24 decoder rows on one thread. `threads` (the page's ?threads=N) asks for more.
export const DEFAULT_THREADS = 1;

// -- errors -----------------------------------------------------------------------------------------

/** Every error a user causes and can fix (bad input, options, files or models). */
export class TraductorError extends Error {
  constructor(message) { super(message); this.name = this.constructor.name; }
}
/** A model package that cannot be used: missing, corrupt, or of an unknown format. */
export class ModelError extends TraductorError {}
/** Bad input or options. */
export class InputError extends TraductorError {}

// -- text: runtime/text.py --------------------------------------------------------------------------

const ABBREVIATIONS = new Set(
  'sr sra srta dr dra ud uds vd vds etc pág cap vol núm art av mr mrs ms st jr vs prof gen lt col sgt no fig ch vv cf ca'.split(' '));
const BOUNDARY = /([.!?…]+["'”’»)\]]*)(\s+)(?=[¿¡"'“‘«(\[]*[A-ZÁÉÍÓÚÑÜ0-9])/gu;
// Python's str.split() separators that survive clean_text's removal of control characters.
const PY_SPACE = /[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const STRIP_QUOTES = '¿¡"\'“‘«(';

/** clean_text: drop control and format characters (tabs/newlines become spaces), NFC, collapse spaces. */
export function cleanText(text) {
  const kept = text.replace(/[\t\r\n\v\f]/g, ' ').replace(/[\p{Cc}\p{Cs}\p{Co}]|(?!\u200d)\p{Cf}/gu, '');
  return kept.normalize('NFC').split(PY_SPACE).filter(Boolean).join(' ');
}

function pyStrip(s, chars) {
  const cs = [...s];
  let a = 0, b = cs.length;
  while (a < b && chars.includes(cs[a])) a++;
  while (b > a && chars.includes(cs[b - 1])) b--;
  return cs.slice(a, b).join('');
}

/** split_sentences: at sentence-final punctuation followed by a capitalised word; abbreviations stay whole. */
export function splitSentences(text) {
  const pieces = [];
  let start = 0;
  for (const m of text.matchAll(BOUNDARY)) {
    const end1 = m.index + m[1].length, end2 = end1 + m[2].length;
    const before = text.slice(start, m.index);
    const words = before.split(PY_SPACE).filter(Boolean);
    const lastWord = words.length ? words[words.length - 1] : '';
    if (m[1] === '.' && (ABBREVIATIONS.has(pyStrip(lastWord.toLowerCase(), STRIP_QUOTES)) || [...lastWord].length === 1)) {
      continue; // "Sr. López", "J. R. R."
    }
    pieces.push(text.slice(start, end1).trim());
    start = end2;
  }
  const tail = text.slice(start).trim();
  if (tail) pieces.push(tail);
  return pieces.filter(Boolean);
}

// -- search: runtime/search.py ----------------------------------------------------------------------

/** How many tokens may be generated for a source of srcLen subwords (end token included). */
export function maxTargetLength(srcLen, modelMax, ratio = 2.0, extra = 10) {
  return Math.max(1, Math.min(modelMax - 1, Math.trunc(srcLen * ratio) + extra));
}

export function paddedLength(n, multiple = 1) {
  return Math.ceil(n / multiple) * multiple;
}

function normalized(h, lengthPenalty) {
  // Lengths count the end token, so a hypothesis that ended at once still has length 1.
  const length = h.tokens.length + (h.finished ? 1 : 0);
  return h.score / Math.pow(Math.max(length, 1), lengthPenalty);
}

/** Take the most likely token each step; finished rows leave the running batch. */
export class GreedySearch {
  constructor(bosId, eosId, minLength = 1) { Object.assign(this, { bosId, eosId, minLength }); }

  /** limits[i]: the most tokens sentence i may produce. onStep(produced [[sentence, token], ...]) after each step. */
  async search(decoder, limits, onStep = null) {
    const hyps = limits.map(() => ({ tokens: [], score: 0, finished: false, token_scores: [] }));
    let live = limits.map((_, i) => i);
    let tokens = live.map(() => this.bosId);
    for (let step = 0; live.length; step++) {
      // With min_length 1, step 0 asks for two tokens: the end token may not come first.
      const first = step === 0 && this.minLength > 0;
      const k = first ? 2 : 1;
      const { vals, ids } = await decoder.step(tokens, k);
      const keep = [], produced = [], best = [];
      for (let row = 0; row < live.length; row++) {
        const col = first && ids[row * k] === this.eosId ? 1 : 0;
        const t = ids[row * k + col], s = vals[row * k + col];
        best.push(t);
        const i = live[row], h = hyps[i];
        h.score += s;
        if (t === this.eosId) { h.finished = true; continue; }
        h.tokens.push(t);
        h.token_scores.push(s);
        produced.push([i, t]);
        if (step + 1 < limits[i]) keep.push(row);
      }
      if (onStep) await onStep(produced, hyps);
      if (keep.length < live.length) {
        if (!keep.length) break;
        decoder.keep(keep);
        live = keep.map((r) => live[r]);
        tokens = keep.map((r) => best[r]);
      } else {
        tokens = best;
      }
    }
    return hyps.map((h) => [h]);
  }
}

/** Beam search with a length penalty and n-best output, step for step as runtime/search.py's. */
export class BeamSearch {
  constructor(bosId, eosId, beamSize = 4, lengthPenalty = 1.0, numHypotheses = 1, minLength = 1) {
    Object.assign(this, { bosId, eosId, k: beamSize, lengthPenalty, numHypotheses, minLength });
  }

  /** The decoder's running batch holds k rows per sentence (row = sentence * k + beam). */
  async search(decoder, limits, onStep = null) {
    const k = this.k, n = limits.length, eos = this.eosId;
    const finished = limits.map(() => []);
    let live = limits.map((_, i) => i);
    // float32 like numpy's: sums are rounded to float32 (Math.fround of a float64 sum of two float32s is exact).
    const scores = limits.map(() => { const a = new Float32Array(k).fill(-Infinity); a[0] = 0; return a; });
    const seqs = limits.map(() => Array.from({ length: k }, () => []));
    let tokens = new Array(n * k).fill(this.bosId);
    for (let step = 0; live.length; step++) {
      const first = step === 0 && this.minLength > 0;
      const width = 2 * k + (first ? 1 : 0); // min_length 1, step 0: one spare, the end token is dropped
      const { vals, ids } = await decoder.step(tokens, width); // (live.length * k, width)
      const nextLive = [], rows = [], nextTokens = [];
      const total = new Float32Array(k * width), order = new Array(k * width);
      for (let block = 0; block < live.length; block++) {
        const i = live[block], base = block * k * width;
        for (let j = 0; j < k * width; j++) {
          const v = first && ids[base + j] === eos ? -Infinity : vals[base + j];
          total[j] = scores[i][Math.floor(j / width)] + v; // stored as float32
          order[j] = j;
        }
        // numpy's argsort(-total, kind="stable"): best first, ties by index.
        order.sort((a, b) => (total[a] > total[b] ? -1 : total[a] < total[b] ? 1 : a - b));
        const keptScores = [], keptSeqs = [];
        for (let r = 0; r < 2 * k; r++) {
          const index = order[r], score = total[index];
          if (score === -Infinity) break;
          const beam = Math.floor(index / width), token = ids[base + index];
          if (token === eos) {
            if (finished[i].length < k) finished[i].push({ tokens: seqs[i][beam].slice(), score, finished: true });
          } else if (keptSeqs.length < k) {
            keptScores.push(score);
            keptSeqs.push([...seqs[i][beam], token]);
            rows.push(block * k + beam);
            nextTokens.push(token);
          }
          if (keptSeqs.length === k && finished[i].length >= k) break;
        }
        if (finished[i].length < k && step + 1 >= limits[i]) {
          keptSeqs.forEach((s, m) => finished[i].push({ tokens: s, score: keptScores[m], finished: false }));
        }
        if (finished[i].length >= k || step + 1 >= limits[i] || !keptSeqs.length) {
          rows.length -= keptSeqs.length;
          nextTokens.length -= keptSeqs.length;
          continue;
        }
        while (keptSeqs.length < k) { // fewer than k candidates: pad with dead copies
          keptScores.push(-Infinity);
          keptSeqs.push([]);
          rows.push(block * k);
          nextTokens.push(eos);
        }
        scores[i].set(keptScores);
        seqs[i] = keptSeqs;
        nextLive.push(i);
      }
      if (onStep) await onStep(null, null);
      live = nextLive;
      if (live.length) {
        decoder.keep(rows);
        tokens = nextTokens;
      }
    }
    const lp = this.lengthPenalty;
    return finished.map((f) => f.map((h) => [h, normalized(h, lp)])
      .sort((a, b) => (a[1] > b[1] ? -1 : a[1] < b[1] ? 1 : 0)) // stable, like sorted(reverse=True)
      .slice(0, this.numHypotheses).map(([h]) => h));
  }
}

// -- the graphs: runtime/onnx_model.py and decoder.py --------------------------------------------

const layerName = (template, i) => template.replaceAll('{i}', String(i));

function int64(values, dims) {
  return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
}

/** Rows of a (rows, ...) float32 tensor, in this order (rows may repeat). */
function gatherRows(tensor, rows) {
  const [n, ...rest] = tensor.dims;
  const size = n ? tensor.data.length / n : 0;
  const out = new Float32Array(rows.length * size);
  rows.forEach((r, i) => out.set(tensor.data.subarray(r * size, (r + 1) * size), i * size));
  return new ort.Tensor('float32', out, [rows.length, ...rest]);
}

/** The KV-cache step decoder the searches drive (OnnxStepDecoder): the encoder's cross K/V once,
 * one per sentence and shared by its `repeat` rows (beams); present self K/V fed back as past. */
export class StepDecoder {
  static async create(model, ids, mask, batch, srcLen, repeat = 1) {
    const d = new StepDecoder();
    Object.assign(d, { model, repeat, batch, srcLen, position: 0 });
    const io = model.config.io;
    const out = await model.encoder.run({ [io.input_ids]: int64(ids, [batch, srcLen]), [io.attention_mask]: int64(mask, [batch, srcLen]) },
      model.encOutNames);
    d.cross = model.encOutNames.map((name) => out[name]);
    d.maskRows = mask; // flat (batch * srcLen) numbers
    d.mask = int64(mask, [batch, srcLen]);
    const dims = model.config.dims, rows = batch * repeat;
    d.past = model.pastNames.map(() => new ort.Tensor('float32', new Float32Array(0), [rows, dims.n_heads, 0, dims.head_dim]));
    return d;
  }

  get rows() { return this.past[0].dims[0]; }

  /** tokens (one per running row) -> { vals: Float32Array (rows * k), ids: number[] (rows * k) }, best first. */
  async step(tokens, topK) {
    const m = this.model, io = m.config.io;
    const feeds = { [io.input_ids]: int64(tokens, [tokens.length, 1]), [io.position]: int64([this.position], [1]),
      [io.attention_mask]: this.mask, [io.top_k]: int64([topK], [1]) };
    m.pastNames.forEach((name, j) => { feeds[name] = this.past[j]; });
    m.encOutNames.forEach((name, j) => { feeds[name] = this.cross[j]; });
    const out = await m.decoder.run(feeds, m.stepOutputs);
    this.past = m.presentNames.map((name) => out[name]);
    this.position += 1;
    return { vals: out[io.top_log_probs].data, ids: Array.from(out[io.top_ids].data, Number) };
  }

  /** Continue with these rows only, in this order; each run of `repeat` rows comes from one sentence. */
  keep(rows) {
    const k = this.repeat, n = this.rows;
    const same = rows.length === n && rows.every((r, i) => Math.floor(r / k) === Math.floor(i / k));
    this.past = this.past.map((p) => gatherRows(p, rows));
    if (!same) { // the set of sentences changed: gather cross K/V and mask once per sentence
      const sentences = rows.filter((_, i) => i % k === 0).map((r) => Math.floor(r / k));
      this.cross = this.cross.map((c) => gatherRows(c, sentences));
      const L = this.srcLen, mask = [];
      for (const s of sentences) for (let j = 0; j < L; j++) mask.push(this.maskRows[s * L + j]);
      this.maskRows = mask;
      this.batch = sentences.length;
      this.mask = int64(mask, [sentences.length, L]);
    }
  }
}

// -- loading --------------------------------------------------------------------------------------

async function sha256Hex(bytes) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (subtle) {
    const digest = await subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  return sha256Fallback(bytes); // WebCrypto is only offered in secure contexts (https, localhost)
}

// SHA-256 in plain JS (FIPS 180-4), for pages served over plain http from another host.
function sha256Fallback(bytes) {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const n = bytes.length, total = Math.ceil((n + 9) / 64) * 64;
  const tail = new Uint8Array(total - Math.floor(n / 64) * 64);
  tail.set(bytes.subarray(Math.floor(n / 64) * 64));
  tail[n % 64] = 0x80;
  const bits = new DataView(tail.buffer);
  bits.setUint32(tail.length - 8, Math.floor(n / 0x20000000));
  bits.setUint32(tail.length - 4, (n * 8) >>> 0);
  const W = new Uint32Array(64);
  const rot = (x, r) => (x >>> r) | (x << (32 - r));
  const block = (view, off) => {
    for (let t = 0; t < 16; t++) W[t] = view.getUint32(off + 4 * t);
    for (let t = 16; t < 64; t++) {
      const a = W[t - 15], b = W[t - 2];
      W[t] = (W[t - 16] + (rot(a, 7) ^ rot(a, 18) ^ (a >>> 3)) + W[t - 7] + (rot(b, 17) ^ rot(b, 19) ^ (b >>> 10))) >>> 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let t = 0; t < 64; t++) {
      const t1 = (h + (rot(e, 6) ^ rot(e, 11) ^ rot(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + W[t]) >>> 0;
      const t2 = ((rot(a, 2) ^ rot(a, 13) ^ rot(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    [a, b, c, d, e, f, g, h].forEach((v, i) => { H[i] = (H[i] + v) >>> 0; });
  };
  const body = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let off = 0; off + 64 <= n; off += 64) block(body, off);
  for (let off = 0; off < tail.length; off += 64) block(bits, off);
  return [...H].map((v) => v.toString(16).padStart(8, '0')).join('');
}

async function fetchChecked(url, name, entry, fetchImpl, onBytes, hint = '') {
  let res;
  try {
    res = await fetchImpl(url);
  } catch (e) {
    throw new ModelError(`${name} could not be fetched from ${url}: ${e.message}`);
  }
  if (!res.ok) throw new ModelError(`${name} could not be fetched from ${url}: HTTP ${res.status}${res.status === 404 && hint ? hint : ''}`);
  const expected = entry ? entry.size : null;
  let bytes;
  if (res.body && expected !== null) {
    const reader = res.body.getReader();
    bytes = new Uint8Array(expected);
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (got + value.length > expected) {
        await reader.cancel();
        throw new ModelError(`${name} is larger than the ${expected} bytes the manifest says: the file was changed`);
      }
      bytes.set(value, got);
      got += value.length;
      onBytes(got);
    }
    if (got !== expected) throw new ModelError(`${name} is ${got} bytes, the manifest says ${expected}: the file is truncated or was changed`);
  } else {
    bytes = new Uint8Array(await res.arrayBuffer());
    onBytes(bytes.length);
  }
  return bytes;
}

function checkConfig(d) {
  if (!d || typeof d !== 'object') throw new ModelError('config.json does not hold a JSON object');
  if (d.format !== FORMAT) throw new ModelError(`not a traductor model (config.json format is ${JSON.stringify(d.format)})`);
  if (!READABLE_VERSIONS.includes(d.format_version)) {
    throw new ModelError(`unsupported model format version ${d.format_version}; this library reads versions ${READABLE_VERSIONS.join(', ')}`);
  }
  for (const key of ['dims', 'special_tokens', 'variants', 'default_variant', 'source_language', 'target_language']) {
    if (!(key in d)) throw new ModelError(`config.json is missing or has a malformed field: ${key}`);
  }
  // The defaults of runtime/package.py for fields a package may leave out.
  const io = {
    input_ids: 'input_ids', attention_mask: 'attention_mask', position: 'position', key_cross: 'key_cross_{i}',
    value_cross: 'value_cross_{i}', past_key_self: 'past_key_self_{i}', past_value_self: 'past_value_self_{i}',
    present_key_self: 'present_key_self_{i}', present_value_self: 'present_value_self_{i}', log_probs: 'log_probs',
    top_k: 'top_k', top_log_probs: 'top_log_probs', top_ids: 'top_ids', ...(d.io || {}),
  };
  const decoding = { beam_size: 4, length_penalty: 1.0, max_length_ratio: 2.0, max_length_extra: 10, source_pad_multiple: 8,
    min_length: 1, ...(d.decoding || {}) };
  const tokenizers = { source: 'tokenizer.json', target: 'tokenizer.json', ...(d.tokenizers || {}) };
  for (const side of ['source', 'target']) {
    const f = tokenizers[side];
    if (typeof f !== 'string' || !f || f.includes('/') || f.includes('\\') || f === '.' || f === '..') {
      throw new ModelError(`config.json: tokenizers.${side} must be a file name inside the package, got ${JSON.stringify(f)}`);
    }
  }
  if (![0, 1].includes(decoding.min_length)) throw new ModelError(`config.json: decoding.min_length must be 0 or 1, got ${decoding.min_length}`);
  if (!Number.isInteger(decoding.source_pad_multiple) || decoding.source_pad_multiple < 1) {
    throw new ModelError(`config.json: decoding.source_pad_multiple must be an integer >= 1, got ${decoding.source_pad_multiple}`);
  }
  return { ...d, io, decoding, tokenizers, language_tags: d.language_tags || {} };
}

/** The variant to load when none is asked for: int8 if the package has it, else the package default. */
export function chooseVariant(config, manifestFiles) {
  const have = Object.keys(config.variants).filter((v) => {
    const f = config.variants[v];
    return manifestFiles[f.encoder] && manifestFiles[f.decoder];
  });
  if (have.includes('int8')) return 'int8';
  if (have.includes(config.default_variant)) return config.default_variant;
  if (have.length) return have[0];
  throw new ModelError('the manifest lists none of the variants\' graphs');
}

let runtimeThreads = null; // onnxruntime-web's threads, fixed when its wasm runtime started

/** Whether onnxruntime-web can run threads here: SharedArrayBuffer, which browsers offer only to
 * cross-origin isolated pages (COOP same-origin + COEP require-corp). */
export function canThread() {
  return typeof SharedArrayBuffer !== 'undefined' && globalThis.crossOriginIsolated !== false;
}

/** Threads when the caller names none: DEFAULT_THREADS. */
export function defaultThreads() {
  return DEFAULT_THREADS;
}

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
  const base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`, globalThis.location ? globalThis.location.href : undefined).href;
  const fetchImpl = options.fetch || globalThis.fetch.bind(globalThis);
  const progress = options.onProgress || (() => {});
  progress({ phase: 'config', file: 'config.json', loaded: 0, total: 0 });
  const manifest = await fetchJson(fetchImpl, base, 'manifest.json');
  const files = manifest && manifest.files;
  if (!files || typeof files !== 'object') throw new ModelError('manifest.json is malformed: no files');
  const configBytes = await fetchChecked(base + 'config.json', 'config.json', needEntry(files, 'config.json'), fetchImpl, () => {});
  await verifyHash('config.json', configBytes, files);
  let config;
  try {
    config = checkConfig(JSON.parse(new TextDecoder().decode(configBytes)));
  } catch (e) {
    throw e instanceof ModelError ? e : new ModelError(`config.json is not valid JSON: ${e.message}`);
  }
  const variant = options.variant || chooseVariant(config, files);
  const v = config.variants[variant];
  if (!v) throw new ModelError(`model has no variant ${JSON.stringify(variant)}; it has: ${Object.keys(config.variants).join(', ')}`);
  const tokFiles = [...new Set([config.tokenizers.source, config.tokenizers.target])];
  const names = [...tokFiles, v.encoder, v.decoder];
  const entries = names.map((name) => needEntry(files, name, variant));
  const total = entries.reduce((s, e) => s + e.size, 0) + configBytes.length;
  const loaded = new Map();
  const report = (file) => (n) => {
    loaded.set(file, n);
    progress({ phase: 'download', file, loaded: configBytes.length + [...loaded.values()].reduce((s, x) => s + x, 0), total });
  };
  const hint = ` (this copy of the package lacks the ${variant} variant${variant === 'fp32' ? '; in a source checkout `make fp32` builds it' : ''})`;
  const blobs = await Promise.all(names.map((name, j) => fetchChecked(base + name, name, entries[j], fetchImpl, report(name), j >= tokFiles.length ? hint : '')));
  const downloadMs = now() - t0;
  for (const [j, name] of names.entries()) {
    progress({ phase: 'verify', file: name, loaded: total, total });
    await verifyHash(name, blobs[j], files);
  }

  const wasm = ort.env.wasm;
  if (options.wasmPaths) wasm.wasmPaths = options.wasmPaths;
  else if (!wasm.wasmPaths) wasm.wasmPaths = new URL('./node_modules/onnxruntime-web/dist/', import.meta.url).href;
  if (runtimeThreads === null) {
    // Threads share wasm memory (SharedArrayBuffer): only in cross-origin isolated pages. onnxruntime-web
    // reads numThreads once, when the first session starts its wasm runtime: later loads share it.
    wasm.numThreads = canThread() ? (options.threads || defaultThreads()) : 1;
  }
  const tokenizers = {};
  for (const [j, name] of names.slice(0, tokFiles.length).entries()) {
    try {
      tokenizers[name] = new Tokenizer(JSON.parse(new TextDecoder().decode(blobs[j])), {});
    } catch (e) {
      throw new ModelError(`${name} could not be read: ${e.message}`);
    }
  }
  const sessionOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', ...(options.sessionOptions || {}) };
  const sessions = [];
  for (const [j, name] of [[tokFiles.length, v.encoder], [tokFiles.length + 1, v.decoder]]) {
    progress({ phase: 'session', file: name, loaded: total, total });
    try {
      sessions.push(await ort.InferenceSession.create(blobs[j], sessionOptions));
      if (runtimeThreads === null) runtimeThreads = wasm.numThreads;
    } catch (e) {
      throw new ModelError(`${name} could not be loaded by onnxruntime-web: ${String(e.message || e).split('\n')[0].slice(0, 300)}`);
    }
  }
  const tr = new Translator({
    baseUrl: base, config, variant, encoder: sessions[0], decoder: sessions[1],
    tokenizer: tokenizers[config.tokenizers.source], targetTokenizer: tokenizers[config.tokenizers.target],
    info: { threads: runtimeThreads, crossOriginIsolated: !!globalThis.crossOriginIsolated, downloadBytes: total,
      downloadMs, loadMs: 0, files: names },
  });
  tr.info.loadMs = now() - t0;
  progress({ phase: 'ready', file: null, loaded: total, total });
  return tr;
}

function needEntry(files, name, variant) {
  const e = files[name];
  if (!e) {
    const hint = variant ? ` (the ${variant} variant is not in this package${variant === 'fp32' ? '; in a source checkout `make fp32` builds it' : ''})` : '';
    throw new ModelError(`${name} is not listed in manifest.json${hint}`);
  }
  return e;
}

async function verifyHash(name, bytes, files) {
  if ((await sha256Hex(bytes)) !== files[name].sha256) {
    throw new ModelError(`${name} does not match its sha256 in manifest.json: the file is corrupt or was changed`);
  }
}

async function fetchJson(fetchImpl, base, name) {
  let res;
  try {
    res = await fetchImpl(base + name);
  } catch (e) {
    throw new ModelError(`${name} could not be fetched from ${base}: ${e.message}`);
  }
  if (!res.ok) throw new ModelError(`${base} is not a traductor model: ${name} answered HTTP ${res.status}`);
  try {
    return await res.json();
  } catch (e) {
    throw new ModelError(`${name} is not valid JSON: ${e.message}`);
  }
}

const now = () => (globalThis.performance ? performance.now() : Date.now());

// Let the page paint the words produced so far: wait for the next frame (or 50 ms, for hidden pages,
// which get no frames). Promise continuations alone never yield, and a chain of plain tasks yields to
// rendering only every ~120 ms in Chromium.
function yieldToEventLoop() {
  if (typeof requestAnimationFrame !== 'function') return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 50);
    requestAnimationFrame(() => { clearTimeout(timer); setTimeout(resolve, 0); });
  });
}

// -- the translator: runtime/translator.py --------------------------------------------------------

const OPTION_DEFAULTS = { beam_size: undefined, length_penalty: undefined, max_length: null, num_hypotheses: 1, return_scores: false,
  batch_size: 32, target_language: null, onText: null, signal: null };

export class Translator {
  constructor({ baseUrl, config, variant, encoder, decoder, tokenizer, targetTokenizer, info }) {
    Object.assign(this, { baseUrl, config, variant, encoder, decoder, tokenizer, targetTokenizer, info });
    const io = config.io, n = config.dims.n_decoder_layers;
    const layers = (...templates) => Array.from({ length: n }, (_, i) => templates.map((t) => layerName(t, i))).flat();
    this.encOutNames = layers(io.key_cross, io.value_cross);
    this.pastNames = layers(io.past_key_self, io.past_value_self);
    this.presentNames = layers(io.present_key_self, io.present_value_self);
    this.stepOutputs = [...this.presentNames, io.top_log_probs, io.top_ids];
    this._checkIo();
    const st = config.special_tokens;
    this.specials = st;
    this.defaults = { ...OPTION_DEFAULTS, beam_size: config.decoding.beam_size, length_penalty: config.decoding.length_penalty };
    if (tokenizer.get_vocab(true).size > config.dims.vocab_size) {
      throw new ModelError(`${config.tokenizers.source} has more tokens than the model's ${config.dims.vocab_size}`);
    }
    this.tags = {};
    for (const [lang, tag] of Object.entries(config.language_tags)) {
      const id = tokenizer.token_to_id(tag);
      if (id === undefined || id === null) throw new ModelError(`config.json: language tag ${tag} (${lang}) is not a token of ${config.tokenizers.source}`);
      this.tags[lang] = id;
    }
    this._queue = Promise.resolve(); // one translation at a time: a session runs one call at a time
  }

  get name() { return `${this.config.source_language}-${this.config.target_language}`; }

  _checkIo() {
    const io = this.config.io;
    const missing = (have, want) => want.filter((x) => !have.includes(x));
    if (missing(this.encoder.inputNames, [io.input_ids, io.attention_mask]).length || missing(this.encoder.outputNames, this.encOutNames).length) {
      throw new ModelError("encoder graph inputs/outputs do not match config.json's io names");
    }
    const decIn = [io.input_ids, io.position, io.attention_mask, ...this.pastNames, ...this.encOutNames, io.top_k];
    if (missing(this.decoder.inputNames, decIn).length || missing(this.decoder.outputNames, this.stepOutputs).length) {
      throw new ModelError("decoder graph inputs/outputs do not match config.json's io names");
    }
  }

  _options(options = {}) {
    const unknown = Object.keys(options).filter((k) => !(k in OPTION_DEFAULTS) && k !== 'return_ids');
    if (unknown.length) throw new InputError(`unknown option(s) ${unknown.sort().join(', ')}; valid: ${Object.keys(OPTION_DEFAULTS).join(', ')}`);
    const given = Object.fromEntries(Object.entries(options).filter(([k, v]) => v !== undefined && (v !== null || k === 'max_length')));
    const o = { ...this.defaults, ...given };
    const bad = (name, why) => new InputError(`invalid option ${name}=${JSON.stringify(o[name])}: ${why}`);
    for (const name of ['beam_size', 'num_hypotheses', 'batch_size']) {
      if (!Number.isInteger(o[name]) || o[name] < 1) throw bad(name, 'must be an integer >= 1');
    }
    if (o.beam_size > 64) throw bad('beam_size', 'must be at most 64');
    if (o.num_hypotheses > o.beam_size) throw bad('num_hypotheses', `cannot exceed beam_size=${o.beam_size}`);
    if (typeof o.length_penalty !== 'number' || !Number.isFinite(o.length_penalty) || o.length_penalty < 0) throw bad('length_penalty', 'must be a finite number >= 0');
    if (o.max_length !== null && (!Number.isInteger(o.max_length) || o.max_length < 1)) throw bad('max_length', 'must be null or an integer >= 1');
    this._tag(o.target_language);
    return o;
  }

  /** The source ids that ask a multi-target model for `lang` ([] for single-target models). */
  _tag(lang) {
    const cfg = this.config, tags = this.tags;
    if (!Object.keys(tags).length) {
      if (lang !== null && lang !== undefined && lang !== cfg.target_language) {
        throw new InputError(`invalid option target_language=${JSON.stringify(lang)}: this model translates into ${cfg.target_language} only`);
      }
      return [];
    }
    if (lang === null || lang === undefined) {
      throw new InputError(`this model translates into several languages: pass target_language, one of ${Object.keys(tags).sort().join(', ')}`);
    }
    if (!(lang in tags)) throw new InputError(`invalid option target_language=${JSON.stringify(lang)}: this model offers ${Object.keys(tags).sort().join(', ')}`);
    return [tags[lang]];
  }

  _limit(ids) {
    const d = this.config.decoding;
    return maxTargetLength(ids.length, this.config.dims.max_len, d.max_length_ratio, d.max_length_extra);
  }

  _encode(text) {
    return text ? this.tokenizer.encode(text, { add_special_tokens: false }).ids.map(Number) : [];
  }

  /** Texts -> sentence-sized id lists the model can take, remembering how to rejoin them (_segments). */
  segments(texts, opts) {
    const tag = this._tag(opts.target_language);
    const maxSrc = this.config.dims.max_len - 1 - tag.length; // room for the end token (and a language tag)
    const eos = this.specials.eos_id;
    const out = [];
    texts.forEach((text, i) => {
      let first = true;
      for (const raw of text.split('\n')) {
        const joiner = first ? '' : '\n';
        first = false;
        const line = cleanText(raw);
        if (!line) { out.push({ textIndex: i, ids: [], joiner }); continue; }
        let ids = this._encode(line);
        const parts = ids.length <= Math.floor(maxSrc / 2) ? [line] : splitSentences(line);
        parts.forEach((part, j) => {
          if (parts.length !== 1) ids = this._encode(part);
          const chunks = [];
          for (let c = 0; c < ids.length; c += maxSrc) chunks.push(ids.slice(c, c + maxSrc));
          if (!chunks.length) chunks.push([]);
          if (chunks.length > 1) {
            console.warn(`input ${i}: a sentence of ${ids.length} subwords exceeds the model's ${maxSrc}; translated in ${chunks.length} pieces`);
          }
          chunks.forEach((chunk, c) => out.push({ textIndex: i, ids: [...tag, ...chunk, eos], joiner: j === 0 && c === 0 ? joiner : ' ' }));
        });
      }
    });
    return out;
  }

  async _search(seqs, opts, onStep = null) {
    const st = this.specials, multiple = this.config.decoding.source_pad_multiple;
    const srcLen = paddedLength(Math.max(...seqs.map((s) => s.length)), multiple);
    const ids = new Array(seqs.length * srcLen).fill(st.pad_id), mask = new Array(seqs.length * srcLen).fill(0);
    seqs.forEach((s, r) => s.forEach((t, j) => { ids[r * srcLen + j] = t; mask[r * srcLen + j] = 1; }));
    const limits = seqs.map((s) => opts.max_length || this._limit(s));
    const minLength = this.config.decoding.min_length;
    const check = async (produced, hyps) => {
      if (opts.signal && opts.signal.aborted) throw opts.signal.reason || new DOMException('aborted', 'AbortError');
      if (onStep) await onStep(produced, hyps);
    };
    if (opts.beam_size === 1) {
      const decoder = await StepDecoder.create(this, ids, mask, seqs.length, srcLen, 1);
      return new GreedySearch(st.bos_id, st.eos_id, minLength).search(decoder, limits, check);
    }
    const decoder = await StepDecoder.create(this, ids, mask, seqs.length, srcLen, opts.beam_size);
    const search = new BeamSearch(st.bos_id, st.eos_id, opts.beam_size, opts.length_penalty, opts.num_hypotheses, minLength);
    return search.search(decoder, limits, check);
  }

  /** Source id lists (end token included) -> n-best hypotheses per list ({tokens, score, finished}).
   * Each source is padded to its length rounded up to source_pad_multiple and batched (up to batch_size)
   * only with sources padded alike, shortest first. The Python runtime also mixes padded lengths in a
   * batch, having measured that padding further is exact on ONNX Runtime's native CPU kernels; that was
   * not measured for the wasm kernels, so the page keeps to one padded length per batch. */
  async translateIds(seqs, options = {}) {
    return this._exclusive(() => this._translateIds(seqs, this._options(options)));
  }

  async _translateIds(seqs, opts) {
    const multiple = this.config.decoding.source_pad_multiple;
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length); // stable
    const keys = order.map((i) => paddedLength(seqs[i].length, multiple));
    const out = seqs.map(() => []);
    for (let start = 0; start < order.length;) {
      let end = start + 1;
      while (end < order.length && end - start < opts.batch_size && keys[end] === keys[start]) end++;
      const idx = order.slice(start, end);
      const hyps = await this._search(idx.map((i) => seqs[i]), opts);
      idx.forEach((i, j) => { out[i] = hyps[j]; });
      start = end;
    }
    return out;
  }

  _exclusive(fn) {
    const run = this._queue.then(fn, fn);
    this._queue = run.catch(() => {});
    return run;
  }

  _decode(ids) {
    return ids.length ? this.targetTokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }) : '';
  }

  _candidate(h, opts) {
    return { text: this._decode(h.tokens), score: normalized(h, opts.length_penalty), log_prob: h.score, finished: h.finished, ids: h.tokens.slice(),
      tokens: h.tokens.map((t) => this.targetTokenizer.id_to_token(t)) };
  }

  /**
   * Translate a string (-> a string) or a list of strings (-> a list). Options: beam_size (config
   * default, usually 4; 1 = greedy), max_length, length_penalty, num_hypotheses, batch_size,
   * target_language, return_scores (-> {text, hypotheses: [{text, score, log_prob, ids, tokens,
   * segments}], tokens_generated, ms}), onText(piece, textSoFar, {tokens, ms}) to stream a single text
   * greedily (beam_size 1), signal (an AbortSignal: the translation stops at the next step).
   */
  async translate(texts, options = {}) {
    const single = typeof texts === 'string';
    const list = single ? [texts] : texts;
    if (!Array.isArray(list) || list.some((t) => typeof t !== 'string')) throw new InputError('translate() takes a string or an array of strings');
    const opts = this._options(options);
    const results = await this._exclusive(() => (opts.onText && single && opts.beam_size === 1 ? this._stream(list[0], opts) : this._translateBatch(list, opts)));
    const wantObjects = opts.return_scores || options.return_ids || opts.num_hypotheses > 1;
    const out = wantObjects ? results : results.map((r) => r.text);
    return single ? out[0] : out;
  }

  async _translateBatch(texts, opts) {
    const t0 = now();
    const segments = this.segments(texts, opts);
    const work = segments.filter((s) => s.ids.length);
    const hyps = await this._translateIds(work.map((s) => s.ids), opts);
    const bySegment = new Map(work.map((s, j) => [s, hyps[j]]));
    return this._assemble(texts, segments, bySegment, opts, now() - t0);
  }

  /** runtime/translator.py translate_stream: segment by segment, greedy; onText gets each new piece. */
  async _stream(text, opts) {
    const t0 = now();
    const segments = this.segments([text], opts);
    const bySegment = new Map();
    let all = '', lastYield = now(), tokens = 0;
    const emit = (piece) => { if (piece) { all += piece; opts.onText(piece, all, { tokens, ms: now() - t0 }); } };
    for (const seg of segments) {
      if (seg.joiner) emit(seg.joiner);
      if (!seg.ids.length) continue;
      let shown = '';
      const onStep = async (produced, hyps) => {
        tokens += 1; // one row: a token or the end token
        if (!produced.length) return;
        const sofar = this._decode(hyps[0].tokens);
        // Hold back a partly decoded multi-byte character until it is complete.
        if (sofar.startsWith(shown) && !sofar.endsWith('\ufffd')) {
          emit(sofar.slice(shown.length));
          shown = sofar;
        }
        if (now() - lastYield > 40) { await yieldToEventLoop(); lastYield = now(); }
      };
      const [h] = await this._search([seg.ids], opts, onStep);
      bySegment.set(seg, h);
      const final = this._decode(h[0].tokens);
      if (final.startsWith(shown) && final.length > shown.length) emit(final.slice(shown.length));
    }
    return this._assemble([text], segments, bySegment, opts, now() - t0);
  }

  _assemble(texts, segments, bySegment, opts, ms) {
    const parts = texts.map(() => []), joiners = texts.map(() => []), generated = texts.map(() => 0);
    for (const s of segments) {
      const hyps = bySegment.get(s) || [];
      if (hyps.length) generated[s.textIndex] += hyps[0].tokens.length + 1; // + end token, as traductor bench counts
      const cands = hyps.map((h) => this._candidate(h, opts));
      parts[s.textIndex].push(cands.length ? cands : [{ text: '', score: 0, log_prob: 0, finished: true, ids: [], tokens: [] }]);
      joiners[s.textIndex].push(s.joiner);
    }
    return texts.map((_, i) => {
      if (!parts[i].length) return { text: '', hypotheses: [{ text: '', score: 0, log_prob: 0, ids: [], tokens: [] }], tokens_generated: 0, ms };
      const nbest = [];
      for (let r = 0; r < opts.num_hypotheses; r++) {
        // Rank r of a multi-part text joins rank r of each part (or its best, if it has fewer).
        const chosen = parts[i].map((c) => c[Math.min(r, c.length - 1)]);
        nbest.push({
          text: chosen.map((c, j) => joiners[i][j] + c.text).join(''),
          score: chosen.reduce((s, c) => s + c.score, 0), log_prob: chosen.reduce((s, c) => s + c.log_prob, 0),
          ids: chosen.flatMap((c) => c.ids), tokens: chosen.flatMap((c) => c.tokens), segments: chosen.map((c) => ({ ids: c.ids, log_prob: c.log_prob, finished: c.finished })),
        });
        if (parts[i].every((c) => c.length <= r + 1)) break;
      }
      return { text: nbest[0].text, hypotheses: nbest, tokens_generated: generated[i], ms };
    });
  }
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
