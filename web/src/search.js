// The searches of runtime/search.py, decision for decision: greedy and beam search over a step
// decoder ({ step(tokens, k), keep(rows) }), knowing nothing about onnxruntime.
// web/test/search_contract.mjs checks them against the Python searches on a scripted decoder.

/** How many tokens may be generated for a source of srcLen subwords (end token included). */
export function maxTargetLength(srcLen, modelMax, ratio = 2.0, extra = 10) {
  return Math.max(1, Math.min(modelMax - 1, Math.trunc(srcLen * ratio) + extra));
}

export function paddedLength(n, multiple = 1) {
  return Math.ceil(n / multiple) * multiple;
}

export function normalized(h, lengthPenalty) {
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

/** Beam search with a length penalty and n-best output, step for step as runtime/search.py's: each
 * step, of a sentence's 2k best continuations those ending in the end token finish and up to k others
 * live on; a sentence is done with k finished, or at its length limit, where its live beams count. */
export class BeamSearch {
  constructor(bosId, eosId, beamSize = 4, lengthPenalty = 1.0, numHypotheses = 1, minLength = 1) {
    Object.assign(this, { bosId, eosId, k: beamSize, lengthPenalty, numHypotheses, minLength });
  }

  /** The decoder's running batch holds k rows per sentence (row = sentence * k + beam). */
  async search(decoder, limits, onStep = null) {
    const k = this.k, n = limits.length;
    const state = limits.map(() => newBeams(k));
    let live = limits.map((_, i) => i); // sentences still running, in row-block order
    let tokens = new Array(n * k).fill(this.bosId);
    for (let step = 0; live.length; step++) {
      const first = step === 0 && this.minLength > 0;
      const width = 2 * k + (first ? 1 : 0); // min_length 1, step 0: one spare, the end token is dropped
      const { vals, ids } = await decoder.step(tokens, width); // (live.length * k, width)
      const nextLive = [], rows = [], nextTokens = [];
      live.forEach((i, block) => {
        const base = block * k * width;
        const { total, order } = this._candidates(state[i].scores, vals, ids, base, width, first);
        const kept = this._advance(state[i], total, order, ids, base, width, step + 1 >= limits[i]);
        if (!kept) return;
        kept.beams.forEach((beam) => rows.push(block * k + beam));
        nextTokens.push(...kept.tokens);
        nextLive.push(i);
      });
      if (onStep) await onStep(null, null);
      live = nextLive;
      if (live.length) {
        decoder.keep(rows);
        tokens = nextTokens;
      }
    }
    return state.map((b) => this._best(b));
  }

  /** One sentence's k * width candidates, from `base` in the step's output: their total scores
   * (float32) and their indices best first. */
  _candidates(beamScores, vals, ids, base, width, first) {
    const k = this.k, total = new Float32Array(k * width), order = new Array(k * width);
    for (let j = 0; j < k * width; j++) {
      const v = first && ids[base + j] === this.eosId ? -Infinity : vals[base + j];
      total[j] = beamScores[Math.floor(j / width)] + v; // stored as float32
      order[j] = j;
    }
    // numpy's argsort(-total, kind="stable"): best first, ties by index.
    order.sort((a, b) => (total[a] > total[b] ? -1 : total[a] < total[b] ? 1 : a - b));
    return { total, order };
  }

  /** One sentence after a step: its new beams (kept in `b`) as {beams: source beam of each, tokens:
   * next token of each}, k of them; null when the sentence is done. */
  _advance(b, total, order, ids, base, width, atLimit) {
    const k = this.k, eos = this.eosId;
    const keptScores = [], keptSeqs = [], beams = [], tokens = [];
    for (let r = 0; r < 2 * k; r++) {
      const index = order[r], score = total[index];
      if (score === -Infinity) break;
      const beam = Math.floor(index / width), token = ids[base + index];
      if (token === eos) {
        if (b.finished.length < k) b.finished.push({ tokens: b.seqs[beam].slice(), score, finished: true });
      } else if (keptSeqs.length < k) {
        keptScores.push(score);
        keptSeqs.push([...b.seqs[beam], token]);
        beams.push(beam);
        tokens.push(token);
      }
      if (keptSeqs.length === k && b.finished.length >= k) break;
    }
    if (b.finished.length < k && atLimit) {
      keptSeqs.forEach((s, m) => b.finished.push({ tokens: s, score: keptScores[m], finished: false }));
    }
    if (b.finished.length >= k || atLimit || !keptSeqs.length) return null;
    while (keptSeqs.length < k) { // fewer than k candidates: pad with dead copies
      keptScores.push(-Infinity);
      keptSeqs.push([]);
      beams.push(0);
      tokens.push(eos);
    }
    b.scores.set(keptScores);
    b.seqs = keptSeqs;
    return { beams, tokens };
  }

  /** A done sentence's n-best, by length-normalized score. */
  _best(b) {
    const lp = this.lengthPenalty;
    return b.finished.map((h) => [h, normalized(h, lp)])
      .sort((a, c) => (a[1] > c[1] ? -1 : a[1] < c[1] ? 1 : 0)) // stable, like sorted(reverse=True)
      .slice(0, this.numHypotheses).map(([h]) => h);
  }
}

/** One sentence's beam state; only the first beam is live at step 0, the others are copies. */
function newBeams(k) {
  // float32 like numpy's: sums are rounded to float32 (Math.fround of a float64 sum of two float32s is exact).
  const scores = new Float32Array(k).fill(-Infinity);
  scores[0] = 0;
  return { scores, seqs: Array.from({ length: k }, () => []), finished: [] };
}
