"""Rebuild tests/assets/tiny-model: a tiny model package (2 layers, d=32) plus PyTorch reference
outputs, so the torch-free runtime tests have a model and ground truth without torch.

    python -m tests.make_tiny_model        (needs the train and export extras; about 30 s)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from traductor.export.export import ExportOptions, export_checkpoint
from traductor.export.package import PackageOptions
from traductor.training.checkpoint import load_model
from traductor.training.search import beam_search, greedy
from traductor.training.train import TrainConfig, Trainer

from .conftest import tiny_config, write_reverse_corpus

ASSET = Path(__file__).parent / "assets" / "tiny-model"
SOURCES = [
    "casa perro gato",
    "sol luna agua fuego tierra",
    "rey",
    "monte vino pan río mar cielo",
    "agua agua casa",
    "gato rey monte",
    "pan",
    "fuego tierra cielo mar río monte pan vino",
]


def build(out: Path = ASSET) -> None:
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp())
    data = write_reverse_corpus(work / "data")
    cfg = TrainConfig(
        data=str(data),
        out=str(work / "run"),
        vocab_size=400,
        max_tokens=600,
        lr=5e-3,
        warmup=100,
        steps=600,
        eval_every=600,
        eval_sentences=20,
        seed=3,
        device="cpu",
        progress=False,
    )
    Trainer(cfg, tiny_config()).run()
    ckpt = work / "run" / "best.pt"
    package = PackageOptions(out, int8=True, beam=4, force=True)
    export_checkpoint(ExportOptions(ckpt, package, dev=data / "dev.tsv", dev_sentences=50))
    model, tok, _ = load_model(ckpt)
    src = [tok.encode(s, add_special_tokens=False).ids + [model.cfg.eos_id] for s in SOURCES]
    ref = {
        "sources": SOURCES,
        "source_ids": src,
        "greedy": [h.tokens for h in greedy(model, src)],
        "beam4": [
            [h.tokens for h in nbest]
            for nbest in beam_search(model, src, beam_size=4, num_hypotheses=3)
        ],
        "beam4_scores": [
            [h.score for h in nbest]
            for nbest in beam_search(model, src, beam_size=4, num_hypotheses=3)
        ],
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1))
    shutil.rmtree(work)
    print(f"wrote {out}")


if __name__ == "__main__":
    build()
