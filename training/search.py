"""Greedy and beam-search translation in PyTorch, for evaluation and as the reference the ONNX
runtime must reproduce token for token."""

from __future__ import annotations

import torch
from torch import Tensor

from traductor.runtime.search import Hypothesis, max_target_length

from .model import DecoderCache, Transformer

__all__ = ["Hypothesis", "beam_search", "greedy", "max_target_length", "pad_batch"]


def pad_batch(
    seqs: list[list[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Right-pad id lists -> ids (batch, max_len) int64 and mask (batch, max_len) bool."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    ids = ids.to(device)
    return ids, ids != pad_id


def _limits(src: list[list[int]], model_max: int, max_length: int | None) -> list[int]:
    # Per sentence, so a sentence's result never depends on the others in its batch.
    return [max_length or max_target_length(len(s), model_max) for s in src]


@torch.no_grad()
def greedy(
    model: Transformer, src: list[list[int]], max_length: int | None = None, min_length: int = 1
) -> list[Hypothesis]:
    """Batched greedy decoding; src are id lists ending with the end token."""
    cfg = model.cfg
    device = next(model.parameters()).device
    src_ids, src_mask = pad_batch(src, cfg.pad_id, device)
    memory = model.encode(src_ids, src_mask)
    limits = _limits(src, cfg.max_len, max_length)
    batch = len(src)
    tokens = torch.full((batch, 1), cfg.bos_id, dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in range(batch)]
    scores = [0.0] * batch
    finished = [False] * batch
    done = [False] * batch
    cache: DecoderCache | None = None
    for step in range(max(limits)):
        logits, cache = model.decode(tokens, memory, src_mask, cache)
        logp = model.log_probs(logits[:, -1].float())
        if step == 0 and min_length > 0:
            logp[:, cfg.eos_id] = float("-inf")  # no empty translations (as the runtime)
        best = logp.argmax(-1)
        for i in range(batch):
            if done[i]:
                continue
            t = int(best[i])
            scores[i] += float(logp[i, t])
            if t == cfg.eos_id:
                done[i] = finished[i] = True
            else:
                out[i].append(t)
                done[i] = step + 1 >= limits[i]
        if all(done):
            break
        tokens = best[:, None]
    return [Hypothesis(o, s, f) for o, s, f in zip(out, scores, finished)]


@torch.no_grad()
def beam_search(
    model: Transformer,
    src: list[list[int]],
    beam_size: int = 4,
    length_penalty: float = 1.0,
    num_hypotheses: int = 1,
    max_length: int | None = None,
) -> list[list[Hypothesis]]:
    """Batched beam search; returns the n best hypotheses per sentence, best first.

    Each step every live beam proposes its continuations; of the 2*beam best, those ending in the
    end token become finished hypotheses and the others (up to beam) live on. A sentence is done
    once it holds `beam` finished hypotheses, or at its length limit, where its live beams count
    too.
    """
    cfg = model.cfg
    device = next(model.parameters()).device
    k = beam_size
    batch = len(src)
    src_ids, src_mask = pad_batch(src, cfg.pad_id, device)
    memory = model.encode(src_ids, src_mask)
    limits = _limits(src, cfg.max_len, max_length)

    # Every sentence gets k rows; only the first is live at step 0 (the others start at -inf).
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    memory, src_mask = memory[expand], src_mask[expand]
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    seqs: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(batch)]
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch
    tokens = torch.full((batch * k, 1), cfg.bos_id, dtype=torch.long, device=device)
    cache: DecoderCache | None = None

    for step in range(max(limits)):
        logits, cache = model.decode(tokens, memory, src_mask, cache)
        top_scores, top_index, vocab = _best_continuations(logits, scores, cfg.eos_id, step == 0)
        rows, next_tokens = [], []
        for b in range(batch):
            kept: tuple[list, list, list] = ([], [], [])
            if not done[b]:
                top = zip(top_scores[b], top_index[b])
                kept = _advance(top, vocab, k, cfg.eos_id, seqs[b], finished[b])
                done[b] = _sentence_done(kept, finished[b], k, at_limit=step + 1 >= limits[b])
            kept_scores, kept_seqs, kept_rows = _placeholders(([], [], []) if done[b] else kept, k)
            scores[b] = torch.tensor(kept_scores, device=device)
            seqs[b] = kept_seqs
            rows.extend(b * k + r for r in kept_rows)
            next_tokens.extend(s[-1] if s else cfg.eos_id for s in kept_seqs)
        if all(done):
            break
        cache = cache.reorder(torch.tensor(rows, device=device))
        tokens = torch.tensor(next_tokens, device=device)[:, None]

    return [
        sorted(f, key=lambda h: h.normalized(length_penalty), reverse=True)[:num_hypotheses]
        for f in finished
    ]


def _best_continuations(
    logits: Tensor, scores: Tensor, eos_id: int, first_step: bool
) -> tuple[list[list[float]], list[list[int]], int]:
    """logits (batch*k, steps, vocab), scores (batch, k) -> each sentence's 2k best
    continuations, best first: their total scores and flat indices beam * vocab + token; and the
    vocabulary size."""
    batch, k = scores.shape
    logp = logits[:, -1].float().log_softmax(-1)  # (batch*k, vocab)
    if first_step:
        logp[:, eos_id] = float("-inf")  # no empty translations (as the runtime)
    vocab = logp.shape[-1]
    total = (scores.view(-1, 1) + logp).view(batch, k * vocab)
    top_scores, top_index = total.topk(2 * k, dim=-1)  # (batch, 2k), best first
    return top_scores.tolist(), top_index.tolist(), vocab


def _advance(
    top, vocab: int, k: int, eos_id: int, seqs: list[list[int]], finished: list[Hypothesis]
) -> tuple[list[float], list[list[int]], list[int]]:
    """One sentence's step. `top`: its 2k best (score, beam * vocab + token), best first. Those
    ending in the end token join `finished` (up to k); the others live on (up to k).
    -> the live beams' scores, sequences and the rows (beams) they continue."""
    kept_scores, kept_seqs, kept_rows = [], [], []
    for score, index in top:
        if score == float("-inf"):
            break
        beam, token = divmod(index, vocab)
        if token == eos_id:
            if len(finished) < k:
                finished.append(Hypothesis(list(seqs[beam]), score, True))
        elif len(kept_seqs) < k:
            kept_scores.append(score)
            kept_seqs.append(seqs[beam] + [token])
            kept_rows.append(beam)
        if len(kept_seqs) == k and len(finished) >= k:
            break
    return kept_scores, kept_seqs, kept_rows


def _sentence_done(kept: tuple, finished: list[Hypothesis], k: int, at_limit: bool) -> bool:
    """At the length limit the live beams count as (unfinished) hypotheses too."""
    kept_scores, kept_seqs, _ = kept
    if len(finished) < k and at_limit:
        finished.extend(Hypothesis(s, sc, False) for s, sc in zip(kept_seqs, kept_scores))
    return len(finished) >= k or at_limit or not kept_seqs


def _placeholders(kept: tuple, k: int) -> tuple[list[float], list[list[int]], list[int]]:
    """Fill up to k beams with dead rows (-inf, empty, row 0), so the batch keeps its shape."""
    kept_scores, kept_seqs, kept_rows = (list(part) for part in kept)
    missing = k - len(kept_seqs)
    return (
        kept_scores + [float("-inf")] * missing,
        kept_seqs + [[] for _ in range(missing)],
        kept_rows + [0] * missing,
    )
