"""`traductor evaluate`: translate a TSV test set with a checkpoint and score it with sacrebleu."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from .checkpoint import load_model
from .data import read_tsv
from .search import beam_search, greedy


def translate_ids(
    model, src: list[list[int]], beam: int, batch_size: int = 32, length_penalty: float = 1.0
) -> list[list[int]]:
    """Translate id lists in length-sorted batches (less padding), returned in input order."""
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    out: list[list[int]] = [[] for _ in src]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        chunk = [src[i] for i in idx]
        if beam <= 1:
            hyps = [h.tokens for h in greedy(model, chunk)]
        else:
            hyps = [
                nbest[0].tokens
                for nbest in beam_search(
                    model, chunk, beam_size=beam, length_penalty=length_penalty
                )
            ]
        for i, h in zip(idx, hyps):
            out[i] = h
    return out


def _translate_with_checkpoint(path, sources: list[str], args):
    torch.set_grad_enabled(False)
    model, tok, state = load_model(path)
    eos = model.cfg.eos_id
    src = [
        tok.encode(s, add_special_tokens=False).ids[: model.cfg.max_len - 1] + [eos]
        for s in sources
    ]
    hyp_ids = translate_ids(model, src, args.beam, args.batch_size)
    return [tok.decode(h) for h in hyp_ids], {"step": state.get("step"), "engine": "pytorch"}


def _translate_with_package(path, sources: list[str], args):
    """Through the ONNX runtime, exactly as users run the package."""
    from traductor.runtime import Translator

    tr = Translator(path, variant=args.variant)
    hyps = tr.translate(sources, beam_size=args.beam, batch_size=args.batch_size)
    return hyps, {"engine": "onnxruntime", "variant": tr.variant}


def main(args) -> int:
    import sacrebleu

    pairs, report = read_tsv(args.data, limit=args.limit or None)
    print(report, file=sys.stderr)
    sources = [p.source for p in pairs]
    t0 = time.time()
    translate = (
        _translate_with_package if Path(args.checkpoint).is_dir() else _translate_with_checkpoint
    )
    hyps, info = translate(args.checkpoint, sources, args)
    seconds = time.time() - t0
    refs = [p.target for p in pairs]
    bleu, chrf = sacrebleu.corpus_bleu(hyps, [refs]), sacrebleu.corpus_chrf(hyps, [refs])
    tag = f"{Path(args.data).stem}.beam{args.beam}" + (
        f".{info['variant']}" if "variant" in info else ""
    )
    out = (
        Path(args.output)
        if args.output
        else Path(str(Path(args.checkpoint)).rstrip("/") + f".{tag}.txt")
    )
    out.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    result = {
        "model": str(args.checkpoint),
        **info,
        "data": str(args.data),
        "sentences": len(pairs),
        "beam": args.beam,
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "seconds": round(seconds, 1),
        "hypotheses": str(out),
    }
    engine = info["engine"] + (f" {info['variant']}" if "variant" in info else "")
    print(
        f"BLEU {bleu.score:.2f}  chrF {chrf.score:.2f}  "
        f"({len(pairs)} sentences, beam {args.beam}, {engine}, {seconds:.1f} s) -> {out}"
    )
    if args.json:
        print(json.dumps(result))
    return 0
