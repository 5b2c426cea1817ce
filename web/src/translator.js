// The translator (runtime/translator.py): options, batching by padded length, the streamed greedy
// path, and the assembly of segment hypotheses into one result per text.
import { now, yieldToEventLoop } from './clock.js';
import { InputError, ModelError } from './errors.js';
import { OnnxSeq2Seq, StepDecoder } from './model.js';
import { BeamSearch, GreedySearch, maxTargetLength, normalized, paddedLength } from './search.js';
import { segmentTexts } from './tokenizer.js';

const OPTION_DEFAULTS = { beam_size: undefined, length_penalty: undefined, max_length: null, num_hypotheses: 1, return_scores: false,
  batch_size: 32, target_language: null, onText: null, signal: null };

export class Translator {
  constructor({ baseUrl, config, variant, encoder, decoder, tokenizer, targetTokenizer, info }) {
    Object.assign(this, { baseUrl, config, variant, encoder, decoder, tokenizer, targetTokenizer, info });
    this.model = new OnnxSeq2Seq(config, encoder, decoder);
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
    return segmentTexts(texts, (text) => this._encode(text), { tag, maxSrc, eos: this.specials.eos_id });
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
      const decoder = await StepDecoder.create(this.model, ids, mask, seqs.length, srcLen, 1);
      return new GreedySearch(st.bos_id, st.eos_id, minLength).search(decoder, limits, check);
    }
    const decoder = await StepDecoder.create(this.model, ids, mask, seqs.length, srcLen, opts.beam_size);
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
