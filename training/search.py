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
    once it holds `beam` finished hypotheses, or at its length limit, where its live beams count too.
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
        logp = logits[:, -1].float().log_softmax(-1)  # (batch*k, vocab)
        if step == 0:
            logp[:, cfg.eos_id] = float("-inf")  # no empty translations (as the runtime)
        vocab = logp.shape[-1]
        total = (scores.view(-1, 1) + logp).view(batch, k * vocab)
        top_scores, top_index = total.topk(2 * k, dim=-1)  # (batch, 2k), best first
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        rows, next_tokens = [], []
        for b in range(batch):
            kept_scores, kept_seqs, kept_rows = [], [], []
            if not done[b]:
                for score, index in zip(top_scores[b], top_index[b]):
                    if score == float("-inf"):
                        break
                    beam, token = divmod(index, vocab)
                    if token == cfg.eos_id:
                        if len(finished[b]) < k:
                            finished[b].append(Hypothesis(list(seqs[b][beam]), score, True))
                    elif len(kept_seqs) < k:
                        kept_scores.append(score)
                        kept_seqs.append(seqs[b][beam] + [token])
                        kept_rows.append(beam)
                        next_tokens.append(token)
                    if len(kept_seqs) == k and len(finished[b]) >= k:
                        break
                if len(finished[b]) < k and step + 1 >= limits[b]:
                    finished[b].extend(
                        Hypothesis(s, sc, False) for s, sc in zip(kept_seqs, kept_scores)
                    )
                if len(finished[b]) >= k or step + 1 >= limits[b] or not kept_seqs:
                    done[b] = True
            if done[b]:  # placeholder rows keep the batch's shape
                del next_tokens[len(next_tokens) - len(kept_seqs) :]
                kept_scores, kept_seqs, kept_rows = [], [], []
            while len(kept_seqs) < k:
                kept_scores.append(float("-inf"))
                kept_seqs.append([])
                kept_rows.append(0)
                next_tokens.append(cfg.eos_id)
            scores[b] = torch.tensor(kept_scores, device=device)
            seqs[b] = kept_seqs
            rows.extend(b * k + r for r in kept_rows)
        if all(done):
            break
        cache = cache.reorder(torch.tensor(rows, device=device))
        tokens = torch.tensor(next_tokens, device=device)[:, None]

    return [
        sorted(f, key=lambda h: h.normalized(length_penalty), reverse=True)[:num_hypotheses]
        for f in finished
    ]
