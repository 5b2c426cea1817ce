// The two graphs on onnxruntime-web (wasm): runtime/onnx_model.py's sessions and io names, and
// runtime/decoder.py's KV-cache step decoder that the searches drive.
import * as ort from 'onnxruntime-web/wasm';
import { ModelError } from './errors.js';

export { ort };
// One thread unless asked: decoding one sentence is many small steps, and on the machine measured
// (benchmarks/results/web/results.md) a second thread made greedy and beam 4 slower; the Python runtime
// also keeps runs under 24 decoder rows on one thread. `threads` (the page's ?threads=N) asks for more.
export const DEFAULT_THREADS = 1;

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
 * The encoder and decoder sessions from their graphs' bytes ([[name, bytes], [name, bytes]]), and the
 * threads onnxruntime-web runs. options: threads, wasmPaths, sessionOptions (see load()).
 * onSession(name) is called before each session starts.
 */
export async function createSessions(graphs, options = {}, onSession = () => {}) {
  const wasm = ort.env.wasm;
  if (options.wasmPaths) wasm.wasmPaths = options.wasmPaths;
  else if (!wasm.wasmPaths) wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
  if (runtimeThreads === null) {
    // Threads share wasm memory (SharedArrayBuffer): only in cross-origin isolated pages. onnxruntime-web
    // reads numThreads once, when the first session starts its wasm runtime: later loads share it.
    wasm.numThreads = canThread() ? (options.threads || defaultThreads()) : 1;
  }
  const sessionOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', ...(options.sessionOptions || {}) };
  const sessions = [];
  for (const [name, bytes] of graphs) {
    onSession(name);
    try {
      sessions.push(await ort.InferenceSession.create(bytes, sessionOptions));
      if (runtimeThreads === null) runtimeThreads = wasm.numThreads;
    } catch (e) {
      throw new ModelError(`${name} could not be loaded by onnxruntime-web: ${String(e.message || e).split('\n')[0].slice(0, 300)}`);
    }
  }
  const [encoder, decoder] = sessions;
  return { encoder, decoder, threads: runtimeThreads };
}

const layerName = (template, i) => template.replaceAll('{i}', String(i));

/** The two sessions with the io names config.json gives them (runtime/onnx_model.py's OnnxSeq2Seq),
 * checked against the graphs' own inputs and outputs. */
export class OnnxSeq2Seq {
  constructor(config, encoder, decoder) {
    Object.assign(this, { config, encoder, decoder });
    const io = config.io, n = config.dims.n_decoder_layers;
    const layers = (...templates) => Array.from({ length: n }, (_, i) => templates.map((t) => layerName(t, i))).flat();
    this.encOutNames = layers(io.key_cross, io.value_cross);
    this.pastNames = layers(io.past_key_self, io.past_value_self);
    this.presentNames = layers(io.present_key_self, io.present_value_self);
    this.stepOutputs = [...this.presentNames, io.top_log_probs, io.top_ids];
    this._checkIo();
  }

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
}

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
    if (io.candidate_ids && m.decoder.inputNames.includes(io.candidate_ids)) {
      // A package with a vocabulary shortlist (format 8): the browser does not use it. Empty
      // candidates ask the decoder for the whole vocabulary, as Python's shortlist=False.
      const batch = this.mask.dims[0];
      feeds[io.candidate_ids] = int64([], [0]);
      feeds[io.candidate_rows] = int64([], [batch, 0]);
      feeds[io.candidate_bias] = new ort.Tensor('float32', new Float32Array(0), [batch, 0]);
    }
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
