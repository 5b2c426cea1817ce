// The search algorithms of traductor.js against runtime/search.py's, on a scripted decoder that both
// languages implement identically (integer arithmetic, float32 values full of ties): whatever the
// model's numbers, the two searches must make the same choices.
//
//   node web/test/search_contract.mjs cases.json out.json
//
// cases.json: [{"seed": int, "n": sentences, "vocab": int, "limits": [int], "beam": int,
//               "length_penalty": float, "num_hypotheses": int, "min_length": 0|1}, ...]
// tests/test_web.py runs the same cases through the Python searches with its twin of ScriptedDecoder.
import { readFileSync, writeFileSync } from 'node:fs';
import { BeamSearch, GreedySearch } from '../traductor.js';

export const BOS = 1, EOS = 2;

/** Log-probabilities of a row from its history: -(r % 16) / 4 for an integer hash r (ties on purpose). */
function scores(history, vocab) {
  let h = 0;
  for (const t of history) h = (h * 31 + t + 1) % 1000003;
  const out = [];
  for (let v = 0; v < vocab; v++) out.push(-(((h * 48271 + v * 69621) % 2147483647) % 16) / 4);
  return out;
}

export class ScriptedDecoder {
  constructor(seed, rows, group, vocab) {
    this.vocab = vocab;
    this.histories = Array.from({ length: rows }, (_, r) => [seed, Math.floor(r / group)]);
  }

  async step(tokens, topK) {
    const vals = new Float32Array(tokens.length * topK), ids = [];
    tokens.forEach((t, r) => {
      this.histories[r] = [...this.histories[r], t];
      const s = scores(this.histories[r], this.vocab);
      const order = s.map((_, v) => v).sort((a, b) => s[b] - s[a] || a - b).slice(0, topK); // TopK: ties by index
      order.forEach((v, j) => { vals[r * topK + j] = s[v]; ids.push(v); });
    });
    return { vals, ids };
  }

  keep(rows) {
    this.histories = rows.map((r) => this.histories[r]);
  }
}

async function main() {
  const [casesPath, outPath] = process.argv.slice(2);
  const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
  const results = [];
  for (const c of cases) {
    let hyps;
    if (c.beam === 1) {
      const dec = new ScriptedDecoder(c.seed, c.n, 1, c.vocab);
      hyps = await new GreedySearch(BOS, EOS, c.min_length).search(dec, c.limits);
    } else {
      const dec = new ScriptedDecoder(c.seed, c.n * c.beam, c.beam, c.vocab);
      hyps = await new BeamSearch(BOS, EOS, c.beam, c.length_penalty, c.num_hypotheses, c.min_length).search(dec, c.limits);
    }
    results.push(hyps.map((hs) => hs.map((h) => ({ tokens: h.tokens, score: h.score, finished: h.finished }))));
  }
  writeFileSync(outPath, JSON.stringify(results));
}

main().catch((e) => { console.error(e); process.exit(1); });
