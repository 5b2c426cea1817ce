"""The gates a package passes before it is written, and the figures they leave in it.

fp32 against PyTorch (log-probs and K/V at several shapes, greedy tokens on dev sentences), int8
against fp32 (next-token agreement), and the optional BLEU/chrF of every variant. Each gate reads
the staged package through the runtime, as a user's program will.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from traductor.runtime.onnx_model import OnnxSeq2Seq
from traductor.runtime.package import ModelPackageConfig, TraductorError
from traductor.runtime.quality import forced_token_agreement, ort_greedy
from traductor.training.data import read_tsv
from traductor.training.search import greedy

# (batch, src_len, past_len, rows per sentence) checked against PyTorch: batch 1 with an empty past,
# and groups of rows sharing a sentence's cross K/V as beam search runs them.
PARITY_SHAPES = [
    (1, 1, 0, 1),
    (2, 7, 5, 1),
    (3, 11, 1, 1),
    (8, 5, 2, 1),
    (16, 9, 3, 1),
    (2, 7, 5, 3),
    (3, 6, 0, 4),
]
PARITY_ATOL = 1e-4
# Log-probs are compared where the reference is above this: e^-50 is ~2e-22, a token no search can
# pick; far below it float32 spacing alone exceeds PARITY_ATOL (a logit bias of -1e4 has ulp 1e-3).
PARITY_FLOOR = -50.0
# int8 must pick fp32's next token at >= 98% of positions (teacher-forced on fp32's own output).
# Healthy dynamic int8 sits at 99-100% per token; the accuracy collapse users report for quantized
# decoders (loops, garbage) shows up as far lower agreement, so 98% separates the two with margin.
INT8_MIN_TOKEN_AGREEMENT = 0.98


class ExportError(TraductorError):
    """The package failed verification or cannot be written."""


@dataclass
class GateResult:
    """What one gate found about one variant."""

    checks: dict  # figures for the summary line and the model card, by name
    agreement: float  # share of dev sentences whose greedy tokens equal the reference's
    problems: list[str] = field(default_factory=list)  # why it failed; empty when it passed
    tokens: list[list[int]] = field(
        default_factory=list
    )  # its greedy tokens, where a later gate needs them


def check_parity(model, ort_model: OnnxSeq2Seq, shapes=PARITY_SHAPES, seed: int = 0) -> float:
    """Max |difference| between ORT and PyTorch (log-probs, cross K/V, present K/V) over the
    shapes."""
    g = torch.Generator().manual_seed(seed)
    return max((_parity_at(model, ort_model, (*shape, 1)[:4], g) for shape in shapes), default=0.0)


def _parity_at(model, ort_model: OnnxSeq2Seq, shape: tuple, g: torch.Generator) -> float:
    """check_parity at one (batch, src_len, past_len, rows per sentence)."""
    cfg = model.cfg
    batch, src_len, past_len, group = shape
    rows = batch * group
    ids = torch.randint(4, cfg.vocab_size, (batch, src_len), generator=g)
    mask = torch.ones(batch, src_len, dtype=torch.long)
    if batch > 1 and src_len > 1:
        mask[1, src_len // 2 :] = 0  # one padded row
        ids[1, src_len // 2 :] = cfg.pad_id
    expand = torch.arange(batch).repeat_interleave(group)  # PyTorch gets every row its own copy
    with torch.no_grad():
        mem = model.encode(ids, mask != 0)
        cross = [t for kv in model.cross_kv(mem) for t in kv]
        row_mask = (mask != 0)[expand]
        prefix = torch.randint(4, cfg.output_vocab_size, (rows, past_len + 1), generator=g)
        prefix[:, 0] = cfg.bos_id
        past_kv = None
        if past_len:
            _, cache = model.decode(prefix[:, :past_len], mem[expand], row_mask)
            past_kv = cache.self_kv
        logits, present = model.decode_step(
            prefix[:, past_len:],
            torch.tensor([past_len]),
            row_mask,
            past_kv,
            model.cross_kv(mem[expand]),
        )
        ref = model.log_probs(logits[:, -1]).numpy()
    ort_cross = ort_model.encode(ids.numpy(), mask.numpy())
    worst = _cross_kv_diff(ort_cross, cross, mask.numpy().astype(bool))
    past = ort_model.empty_past(rows) if not past_len else [t.numpy() for kv in past_kv for t in kv]
    log_probs, ort_present = ort_model.step(
        prefix[:, past_len:].numpy(), past_len, mask.numpy(), past, ort_cross
    )
    if log_probs.shape != (rows, cfg.output_vocab_size) or ort_present[0].shape[:3] != (
        rows,
        cfg.n_heads,
        past_len + 1,
    ):
        raise ExportError(
            f"decoder output shapes wrong at (batch={batch}, src_len={src_len}, "
            f"past_len={past_len}, group={group})"
        )
    if not np.array_equal(np.isfinite(ref), np.isfinite(log_probs)):
        raise ExportError(
            "the decoder graph suppresses other tokens than PyTorch (-inf log-probs differ)"
        )
    considered = ref >= PARITY_FLOOR
    worst = max(worst, float(np.abs(log_probs[considered] - ref[considered]).max()))
    present_ref = (t for kv in present for t in kv)
    return max(
        worst, max(float(np.abs(a - b.numpy()).max()) for a, b in zip(ort_present, present_ref))
    )


def _cross_kv_diff(ort_cross: list, cross: list, real: np.ndarray) -> float:
    """Max |difference| of the cross K/V (batch, heads, src_len, head_dim) at real positions only:
    padded ones are masked in the decoder, and the runtime leaves them zero (it encodes each row at
    its own padded length)."""
    return max(
        float(np.abs(a.transpose(0, 2, 1, 3)[real] - b.numpy().transpose(0, 2, 1, 3)[real]).max())
        for a, b in zip(ort_cross, cross)
    )


def fp32_against_pytorch(model, fp32: OnnxSeq2Seq, src: list[list[int]], min_length: int):
    """Parity at PARITY_SHAPES and greedy tokens on the dev sentences `src` -> GateResult."""
    diff = check_parity(model, fp32)
    ref = [
        h.tokens for h in _batched(lambda chunk: greedy(model, chunk, min_length=min_length), src)
    ]
    got = ort_greedy(fp32, src)
    identical = sum(a == b for a, b in zip(ref, got))
    result = GateResult(
        {"parity_max_diff": diff, "greedy_identical": f"{identical}/{len(src)}"},
        identical / len(src),
        tokens=got,
    )
    if diff > PARITY_ATOL:
        result.problems.append(f"fp32 log-probs differ from PyTorch by {diff:.2e} > {PARITY_ATOL}")
    if identical < len(src):
        result.problems.append(
            f"fp32 greedy output differs from PyTorch on {len(src) - identical} of {len(src)} "
            "dev sentences"
        )
    return result


def int8_against_fp32(
    int8: OnnxSeq2Seq, src: list[list[int]], fp32_tokens: list[list[int]]
) -> GateResult:
    """Next-token agreement with fp32's greedy output, teacher-forced; below
    INT8_MIN_TOKEN_AGREEMENT the variant is refused (whatever --accept-mismatch says)."""
    got = ort_greedy(int8, src)
    agreement = forced_token_agreement(int8, src, fp32_tokens)
    same = sum(a == b for a, b in zip(fp32_tokens, got))
    if agreement < INT8_MIN_TOKEN_AGREEMENT:
        raise ExportError(
            f"int8 variant refused: it picks fp32's next token at only {100 * agreement:.2f}% of "
            f"positions (threshold {100 * INT8_MIN_TOKEN_AGREEMENT:.0f}%); export without --int8"
        )
    checks = {"token_agreement": agreement, "greedy_identical": f"{same}/{len(src)}"}
    return GateResult(checks, same / len(src))


def fail_or_warn(problems: list[str], accept: bool) -> None:
    """Refuse the package on any problem, unless the user accepts it (then warn loudly)."""
    if not problems:
        return
    if not accept:
        raise ExportError(
            "verification failed, package not written: "
            + "; ".join(problems)
            + " (--accept-mismatch writes it anyway)"
        )
    for p in problems:
        print(f"WARNING: {p} -- written anyway because of --accept-mismatch", file=sys.stderr)


def measure_quality(
    model_dir: Path, pkg: ModelPackageConfig, test: Path, beam: int
) -> tuple[ModelPackageConfig, list[dict]]:
    """BLEU/chrF (sacrebleu defaults) of every variant, greedy and beam, through the runtime."""
    import sacrebleu

    from traductor.runtime import Translator

    pairs, _ = read_tsv(test)
    refs = [[p.target for p in pairs]]
    rows, variants = [], dict(pkg.variants)
    for name in pkg.variants:
        tr = Translator(model_dir, variant=name)
        for b in sorted({1, beam}):
            t0 = time.time()
            hyps = tr.translate([p.source for p in pairs], beam_size=b)
            seconds = time.time() - t0
            bleu, chrf = (
                sacrebleu.corpus_bleu(hyps, refs).score,
                sacrebleu.corpus_chrf(hyps, refs).score,
            )
            rows.append(
                {
                    "variant": name,
                    "beam": b,
                    "bleu": bleu,
                    "chrf": chrf,
                    "seconds": seconds,
                    "sentences": len(pairs),
                }
            )
            print(
                f"{name} beam {b}: BLEU {bleu:.2f} chrF {chrf:.2f} "
                f"({len(pairs)} sentences, {seconds:.1f} s)",
                file=sys.stderr,
            )
            if b == beam:
                variants[name] = replace(variants[name], bleu=round(bleu, 2))
    return replace(pkg, variants=variants), rows


def _batched(fn, src, size: int = 16):
    out = []
    for start in range(0, len(src), size):
        out += fn(src[start : start + size])
    return out
