"""Greedy and beam-search translation in PyTorch, for evaluation and as the reference the ONNX
runtime must reproduce token for token."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .model import DecoderCache, Transformer


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, without the start token, without the end token
    score: float  # sum of token log-probabilities (end token included when the hypothesis finished)
    finished: bool

    def normalized(self, length_penalty: float) -> float:
        # Lengths count the end token, so a hypothesis that stopped at once still has length 1.
        length = len(self.tokens) + (1 if self.finished else 0)
        return self.score / (max(length, 1) ** length_penalty)


def max_target_length(src_len: int, model_max: int, ratio: float = 2.0, extra: int = 10) -> int:
    """How many tokens the decoder may produce for a source of src_len subwords."""
    return max(1, min(model_max - 1, int(src_len * ratio) + extra))


def pad_batch(seqs: list[list[int]], pad_id: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Right-pad id lists -> ids (batch, max_len) int64 and mask (batch, max_len) bool."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    ids = ids.to(device)
    return ids, ids != pad_id


@torch.no_grad()
def greedy(model: Transformer, src: list[list[int]], max_length: int | None = None) -> list[Hypothesis]:
    """Batched greedy decoding; src are id lists ending with the end token."""
    cfg = model.cfg
    device = next(model.parameters()).device
    src_ids, src_mask = pad_batch(src, cfg.pad_id, device)
    memory = model.encode(src_ids, src_mask)
    limit = max_length or max_target_length(src_ids.shape[1], cfg.max_len)
    batch = len(src)
    tokens = torch.full((batch, 1), cfg.bos_id, dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in range(batch)]
    scores = [0.0] * batch
    done = [False] * batch
    cache: DecoderCache | None = None
    for _ in range(limit):
        logits, cache = model.decode(tokens, memory, src_mask, cache)
        logp = logits[:, -1].float().log_softmax(-1)
        best = logp.argmax(-1)
        for i in range(batch):
            if done[i]:
                continue
            t = int(best[i])
            scores[i] += float(logp[i, t])
            if t == cfg.eos_id:
                done[i] = True
            else:
                out[i].append(t)
        if all(done):
            break
        tokens = best[:, None]
    return [Hypothesis(o, s, d) for o, s, d in zip(out, scores, done)]


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
    once it holds `beam` finished hypotheses, or at the length limit, where its live beams count too.
    """
    cfg = model.cfg
    device = next(model.parameters()).device
    k = beam_size
    batch = len(src)
    src_ids, src_mask = pad_batch(src, cfg.pad_id, device)
    memory = model.encode(src_ids, src_mask)
    limit = max_length or max_target_length(src_ids.shape[1], cfg.max_len)

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

    for step in range(limit):
        logits, cache = model.decode(tokens, memory, src_mask, cache)
        logp = logits[:, -1].float().log_softmax(-1)  # (batch*k, vocab)
        vocab = logp.shape[-1]
        total = (scores.view(-1, 1) + logp).view(batch, k * vocab)
        top_scores, top_index = total.topk(2 * k, dim=-1)  # (batch, 2k)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        next_rows, next_tokens = [], []
        new_scores = torch.full((batch, k), float("-inf"), device=device)
        new_seqs: list[list[list[int]]] = []
        for b in range(batch):
            rows: list[int] = []
            kept: list[list[int]] = []
            if not done[b]:
                for score, index in zip(top_scores[b], top_index[b]):
                    beam, token = divmod(index, vocab)
                    if score == float("-inf"):
                        break
                    if token == cfg.eos_id:
                        if len(finished[b]) < k:
                            finished[b].append(Hypothesis(list(seqs[b][beam]), score, True))
                    elif len(rows) < k:
                        new_scores[b, len(rows)] = score
                        rows.append(beam)
                        next_tokens.append(token)
                        kept.append(seqs[b][beam] + [token])
                    if len(rows) == k and len(finished[b]) >= k:
                        break
                if len(finished[b]) >= k:
                    done[b] = True
            # Dead or done sentences keep k placeholder rows so the batch keeps its shape.
            while len(rows) < k:
                rows.append(0)
                next_tokens.append(cfg.eos_id)
                kept.append([])
            next_rows.extend(b * k + r for r in rows)
            new_seqs.append(kept)
        if all(done):
            break
        scores, seqs = new_scores, new_seqs
        for b in range(batch):
            if done[b]:
                scores[b] = float("-inf")
        cache = cache.reorder(torch.tensor(next_rows, device=device))
        tokens = torch.tensor(next_tokens, device=device)[:, None]
    else:
        # Length limit: live beams compete with the finished ones.
        for b in range(batch):
            if not done[b]:
                for beam in range(k):
                    if scores[b, beam] != float("-inf"):
                        finished[b].append(Hypothesis(seqs[b][beam], float(scores[b, beam]), False))

    results = []
    for b in range(batch):
        ranked = sorted(finished[b], key=lambda h: h.normalized(length_penalty), reverse=True)
        results.append(ranked[:num_hypotheses])
    return results
