"""Decoding strategies: small classes behind one interface. They know nothing about ONNX Runtime.

A search drives a `StepDecoder`: something that, given one token per running row, returns the
next-token log-probabilities of each row, and that can keep (select and reorder) rows of its running
batch. The ONNX Runtime ones are in `decoder` (make_step_decoder picks one); tests use others.
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
    # Each token's cross-attention (heads, src_len) as the decoder recorded it, when it does
    # (greedy on a decoder graph that outputs it): word alignments without a second pass.
    attention: list[np.ndarray] | None = None

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
        """limits[i]: the most tokens sentence i may produce -> one hypothesis per sentence."""
        hyps = [Hypothesis([], 0.0, False) for _ in limits]
        for _ in self.generate(decoder, limits, hyps):
            pass
        return [[h] for h in hyps]

    def generate(
        self, decoder: StepDecoder, limits: list[int], hyps: list[Hypothesis]
    ) -> Iterator[list[tuple[int, int]]]:
        """Fill `hyps` step by step, yielding the (sentence, token) pairs produced at each step."""
        live = np.arange(len(limits))  # sentence index of each running row
        tokens = np.full(len(limits), self.bos_id, dtype=np.int64)
        step = 0
        while live.size:
            # With min_length 1, step 0 asks for two tokens: the end token may not come first.
            first = step == 0 and self.min_length > 0
            vals, ids = decoder.step(tokens, top_k=2 if first else 1)  # (rows, 1 or 2)
            attention = getattr(decoder, "attention", None)  # (rows, heads, src_len) or None
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
                if attention is not None:
                    h.attention = h.attention or []
                    h.attention.append(attention[row])
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


class _Beams:
    """One sentence's beam state: each live beam's score, tokens and token log-probs, and the
    hypotheses finished so far."""

    __slots__ = ("scores", "seqs", "lps", "finished")

    def __init__(self, k: int):
        self.scores = np.full(k, -np.inf, dtype=np.float32)
        self.scores[0] = 0.0  # only the first beam is live at step 0: the others are copies
        self.seqs: list[list[int]] = [[] for _ in range(k)]
        self.lps: list[list[float]] = [[] for _ in range(k)]  # each token's log-prob
        self.finished: list[Hypothesis] = []


class BeamSearch:
    """Beam search with a length penalty and n-best output.

    Each step every live beam proposes continuations; of the 2*beam best, those ending in the end
    token become finished hypotheses and the others (up to beam) live on. A sentence is done once it
    holds `beam` finished hypotheses, or at its length limit, where its live beams count too. Done
    sentences leave the running batch.

    The update of one sentence after a step (`advance`) depends only on that sentence's own state,
    step and candidates, so a running batch can hold sentences at different steps
    (`continuous.ContinuousBeams`) and give each the result of `search` on it alone.
    """

    def __init__(
        self,
        bos_id: int,
        eos_id: int,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        num_hypotheses: int = 1,
        min_length: int = 1,
    ):
        self.bos_id, self.eos_id, self.min_length = bos_id, eos_id, min_length
        self.k, self.length_penalty, self.num_hypotheses = beam_size, length_penalty, num_hypotheses

    def width(self, step: int) -> int:
        """Candidates to ask of each beam at a sentence's `step`: the 2k best continuations of a
        sentence are among the 2k best of each of its beams (min_length 1, step 0: one spare, since
        the end token is dropped)."""
        return 2 * self.k + (1 if step == 0 and self.min_length > 0 else 0)

    def candidates(self, beams: list[_Beams], vals: np.ndarray, ids: np.ndarray, step: int):
        """The top-`width(step)` log-probs and ids of k rows per sentence -> (total scores, ids,
        log-probs, the 2k best candidate indices), each with one row per sentence."""
        k, width = self.k, vals.shape[1]
        if step == 0 and self.min_length > 0:
            vals = np.where(ids == self.eos_id, -np.inf, vals)
        scores = np.stack([b.scores for b in beams]) if len(beams) > 1 else beams[0].scores[None]
        total = (scores.reshape(-1, 1) + vals).reshape(len(beams), k * width)
        top = np.argsort(-total, axis=1, kind="stable")[:, : 2 * k]
        return total, ids.reshape(len(beams), k * width), vals.reshape(len(beams), k * width), top

    def advance(
        self,
        b: _Beams,
        total: np.ndarray,
        cand_ids: np.ndarray,
        cand_lps: np.ndarray,
        top: np.ndarray,
        width: int,
        step: int,
        limit: int,
    ) -> tuple[list[int], list[int]] | None:
        """One sentence after its `step`: its new beams (kept in `b`) as (source beam of each,
        next token of each), k of them; None when the sentence is done."""
        k, eos = self.k, self.eos_id
        kept_scores, kept_seqs, kept_lps, beams, tokens = [], [], [], [], []
        for index in top:
            score = float(total[index])
            if score == -np.inf:
                break
            beam, token = int(index) // width, int(cand_ids[index])
            token_lp = float(cand_lps[index])
            if token == eos:
                if len(b.finished) < k:
                    b.finished.append(
                        Hypothesis(list(b.seqs[beam]), score, True, list(b.lps[beam]))
                    )
            elif len(kept_seqs) < k:
                kept_scores.append(score)
                kept_seqs.append(b.seqs[beam] + [token])
                kept_lps.append(b.lps[beam] + [token_lp])
                beams.append(beam)
                tokens.append(token)
            if len(kept_seqs) == k and len(b.finished) >= k:
                break
        if len(b.finished) < k and step + 1 >= limit:
            b.finished.extend(
                Hypothesis(s, sc, False, lp) for s, sc, lp in zip(kept_seqs, kept_scores, kept_lps)
            )
        if len(b.finished) >= k or step + 1 >= limit or not kept_seqs:
            return None
        while len(kept_seqs) < k:  # fewer than k candidates: pad with dead copies
            kept_scores.append(-np.inf)
            kept_seqs.append([])
            kept_lps.append([])
            beams.append(0)
            tokens.append(eos)
        b.scores[:] = kept_scores
        b.seqs, b.lps = kept_seqs, kept_lps
        return beams, tokens

    def best(self, b: _Beams) -> list[Hypothesis]:
        """A done sentence's n-best, by length-normalized score."""
        return sorted(b.finished, key=lambda h: h.normalized(self.length_penalty), reverse=True)[
            : self.num_hypotheses
        ]

    def search(self, decoder: StepDecoder, limits: list[int]) -> list[list[Hypothesis]]:
        """The decoder's batch holds k = beam_size rows per sentence (row = sentence * k + beam)."""
        k, n = self.k, len(limits)
        state = [_Beams(k) for _ in range(n)]
        live = list(range(n))  # sentences still running, in row-block order
        tokens = np.full(n * k, self.bos_id, dtype=np.int64)
        step = 0
        while live:
            width = self.width(step)
            vals, ids = decoder.step(tokens, top_k=width)  # (len(live) * k, width) each
            beams = [state[i] for i in live]
            total, cand_ids, cand_lps, top = self.candidates(beams, vals, ids, step)
            next_live, rows, next_tokens = [], [], []
            for block, i in enumerate(live):
                kept = self.advance(
                    state[i],
                    total[block],
                    cand_ids[block],
                    cand_lps[block],
                    top[block],
                    width,
                    step,
                    limits[i],
                )
                if kept is None:
                    continue
                rows += [block * k + beam for beam in kept[0]]
                next_tokens += kept[1]
                next_live.append(i)
            step += 1
            live = next_live
            if live:
                decoder.keep(np.array(rows, dtype=np.int64))
                tokens = np.array(next_tokens, dtype=np.int64)
        return [self.best(b) for b in state]


__all__ = ["StepDecoder", "Hypothesis", "GreedySearch", "BeamSearch", "max_target_length"]
