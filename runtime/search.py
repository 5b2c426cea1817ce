"""Decoding strategies: small classes behind one interface. They know nothing about ONNX Runtime.

A search drives a `StepDecoder`: something that, given one token per running row, returns the
next-token log-probabilities of each row, and that can keep (select and reorder) rows of its
running batch. The ONNX Runtime ones are in `decoder` (make_step_decoder picks one); tests use others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class StepDecoder(Protocol):
    def step(self, tokens: np.ndarray, top_k: int | None = None):
        """tokens (rows,) int64 -> log-probabilities (rows, vocab) float32 for the next token; with
        top_k, only the k best per row: (log-probs (rows, k), ids (rows, k)), best first."""

    def keep(self, rows: np.ndarray) -> None:
        """Continue with these rows of the running batch only, in this order (rows may repeat)."""


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, without the start and the end token
    score: float  # sum of the token log-probabilities (end token included when finished)
    finished: bool  # False when the length limit stopped it
    token_scores: list[float] = field(default_factory=list)

    def normalized(self, length_penalty: float) -> float:
        # Lengths count the end token, so a hypothesis that ended at once still has length 1.
        length = len(self.tokens) + (1 if self.finished else 0)
        return self.score / (max(length, 1) ** length_penalty)


def max_target_length(src_len: int, model_max: int, ratio: float = 2.0, extra: int = 10) -> int:
    """How many tokens may be generated for a source of src_len subwords (end token included)."""
    return max(1, min(model_max - 1, int(src_len * ratio) + extra))


class GreedySearch:
    """Take the most likely token each step; finished rows leave the running batch."""

    def __init__(self, bos_id: int, eos_id: int, min_length: int = 1):
        self.bos_id, self.eos_id, self.min_length = bos_id, eos_id, min_length

    def search(self, decoder: StepDecoder, limits: list[int]) -> list[list[Hypothesis]]:
        """limits[i]: the most tokens sentence i may produce. Returns one hypothesis per sentence."""
        hyps = [Hypothesis([], 0.0, False) for _ in limits]
        for _ in self.generate(decoder, limits, hyps):
            pass
        return [[h] for h in hyps]

    def generate(self, decoder: StepDecoder, limits: list[int], hyps: list[Hypothesis]) -> Iterator[list[tuple[int, int]]]:
        """Fill `hyps` step by step, yielding the (sentence, token) pairs produced at each step."""
        live = np.arange(len(limits))  # sentence index of each running row
        tokens = np.full(len(limits), self.bos_id, dtype=np.int64)
        step = 0
        while live.size:
            # With min_length 1, step 0 asks for two tokens: the end token may not come first.
            first = step == 0 and self.min_length > 0
            vals, ids = decoder.step(tokens, top_k=2 if first else 1)  # (rows, 1 or 2)
            if first:
                col, at = (ids[:, 0] == self.eos_id).astype(np.int64), np.arange(len(ids))
                best, best_logp = ids[at, col], vals[at, col]
            else:
                best, best_logp = ids[:, 0], vals[:, 0]
            keep, produced = [], []
            for row, (i, t, s) in enumerate(zip(live.tolist(), best.tolist(), best_logp.tolist())):
                h = hyps[i]
                h.score += s
                if t == self.eos_id:
                    h.finished = True
                    continue
                h.tokens.append(t)
                h.token_scores.append(s)
                produced.append((i, t))
                if step + 1 < limits[i]:
                    keep.append(row)
            step += 1
            yield produced
            if len(keep) < live.size:
                if not keep:
                    return
                rows = np.array(keep, dtype=np.int64)
                decoder.keep(rows)
                live, best = live[rows], best[rows]
            tokens = best.astype(np.int64)


class BeamSearch:
    """Beam search with a length penalty and n-best output.

    Each step every live beam proposes continuations; of the 2*beam best, those ending in the end
    token become finished hypotheses and the others (up to beam) live on. A sentence is done once it
    holds `beam` finished hypotheses, or at its length limit, where its live beams count too. Done
    sentences leave the running batch.
    """

    def __init__(self, bos_id: int, eos_id: int, beam_size: int = 4, length_penalty: float = 1.0, num_hypotheses: int = 1,
                 min_length: int = 1):
        self.bos_id, self.eos_id, self.min_length = bos_id, eos_id, min_length
        self.k, self.length_penalty, self.num_hypotheses = beam_size, length_penalty, num_hypotheses

    def search(self, decoder: StepDecoder, limits: list[int]) -> list[list[Hypothesis]]:
        """The decoder's running batch must hold `beam_size` rows per sentence (row = sentence * k + beam)."""
        k, n = self.k, len(limits)
        finished: list[list[Hypothesis]] = [[] for _ in range(n)]
        live = list(range(n))  # sentences still running, in row-block order
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        scores[:, 0] = 0.0  # only the first beam is live at step 0: the others are copies
        seqs: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(n)]
        lps: list[list[list[float]]] = [[[] for _ in range(k)] for _ in range(n)]  # each token's log-prob
        tokens = np.full(n * k, self.bos_id, dtype=np.int64)
        step = 0
        while live:
            # The 2k best continuations of a sentence are among the 2k best of each of its beams.
            first = step == 0 and self.min_length > 0
            width = 2 * k + (1 if first else 0)  # min_length 1, step 0: one spare, the end token is dropped
            vals, ids = decoder.step(tokens, top_k=width)  # (len(live) * k, width) each
            if first:
                vals = np.where(ids == self.eos_id, -np.inf, vals)
            total = (scores[live].reshape(-1, 1) + vals).reshape(len(live), k * width)
            cand_ids = ids.reshape(len(live), k * width)
            cand_lps = vals.reshape(len(live), k * width)
            top = np.argsort(-total, axis=1, kind="stable")[:, : 2 * k]
            next_live, rows, next_tokens = [], [], []
            for block, i in enumerate(live):
                kept_scores, kept_seqs, kept_lps = [], [], []
                for index in top[block]:
                    score = float(total[block, index])
                    if score == -np.inf:
                        break
                    beam, token = int(index) // width, int(cand_ids[block, index])
                    token_lp = float(cand_lps[block, index])
                    if token == self.eos_id:
                        if len(finished[i]) < k:
                            finished[i].append(Hypothesis(list(seqs[i][beam]), score, True, list(lps[i][beam])))
                    elif len(kept_seqs) < k:
                        kept_scores.append(score)
                        kept_seqs.append(seqs[i][beam] + [token])
                        kept_lps.append(lps[i][beam] + [token_lp])
                        rows.append(block * k + beam)
                        next_tokens.append(token)
                    if len(kept_seqs) == k and len(finished[i]) >= k:
                        break
                if len(finished[i]) < k and step + 1 >= limits[i]:
                    finished[i].extend(Hypothesis(s, sc, False, lp) for s, sc, lp in zip(kept_seqs, kept_scores, kept_lps))
                if len(finished[i]) >= k or step + 1 >= limits[i] or not kept_seqs:
                    del rows[len(rows) - len(kept_seqs) :], next_tokens[len(next_tokens) - len(kept_seqs) :]
                    continue
                while len(kept_seqs) < k:  # fewer than k candidates: pad with dead copies
                    kept_scores.append(-np.inf)
                    kept_seqs.append([])
                    kept_lps.append([])
                    rows.append(block * k)
                    next_tokens.append(self.eos_id)
                scores[i] = kept_scores
                seqs[i] = kept_seqs
                lps[i] = kept_lps
                next_live.append(i)
            step += 1
            live = next_live
            if live:
                decoder.keep(np.array(rows, dtype=np.int64))
                tokens = np.array(next_tokens, dtype=np.int64)
        return [sorted(f, key=lambda h: h.normalized(self.length_penalty), reverse=True)[: self.num_hypotheses] for f in finished]


__all__ = ["StepDecoder", "Hypothesis", "GreedySearch", "BeamSearch", "max_target_length"]
