"""Shared fixtures: tiny models (2 layers, d=32) and small corpora, all made by the tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

TINY_MODEL = Path(__file__).parent / "assets" / "tiny-model"

WORDS = "casa perro gato sol luna agua fuego tierra cielo mar río monte pan vino rey".split()


def tiny_config(**overrides):
    from traductor.training.model import (
        ModelConfig,
    )  # imported here: runtime-only test runs have no torch

    base = dict(
        vocab_size=64,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.0,
        max_len=64,
    )
    base.update(overrides)
    return ModelConfig(**base)


def write_reverse_corpus(folder: Path, n_train: int = 2000, n_dev: int = 50, seed: int = 0) -> Path:
    """source = 2..6 random words, target = the same words reversed: learnable in seconds."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("dev", n_dev), ("test", n_dev)):
        with open(folder / f"{name}.tsv", "w", encoding="utf-8") as f:
            for _ in range(n):
                words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
                f.write(" ".join(words) + "\t" + " ".join(reversed(words)) + "\n")
    return folder


@pytest.fixture(scope="session")
def reverse_corpus(tmp_path_factory) -> Path:
    return write_reverse_corpus(tmp_path_factory.mktemp("reverse"))


@pytest.fixture(scope="session")
def tiny_checkpoint(reverse_corpus, tmp_path_factory) -> Path:
    """A tiny model trained for a few seconds on the reversal corpus (needs torch)."""
    from traductor.training.train import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("tiny-run")
    cfg = TrainConfig(
        data=str(reverse_corpus),
        out=str(out),
        vocab_size=400,
        max_tokens=600,
        lr=5e-3,
        warmup=100,
        # 600 steps: at 300 the int8 gate's next-token agreement sat at 97.35% on an AVX2-only AMD
        # EPYC (torch trains other last bits there, so other weights), under the 98% the export
        # needs; at 600 seeds 1-4 all pass there.
        steps=600,
        eval_every=600,
        eval_sentences=20,
        seed=3,
        device="cpu",
        progress=False,
    )
    Trainer(cfg, tiny_config()).run()
    return out / "best.pt"


@pytest.fixture(scope="session")
def tiny_package(tiny_checkpoint, tmp_path_factory) -> Path:
    from traductor.export.export import ExportOptions, export_checkpoint
    from traductor.export.package import PackageOptions

    out = tmp_path_factory.mktemp("pkg") / "tiny"
    export_checkpoint(
        ExportOptions(tiny_checkpoint, PackageOptions(out, int8=True), dev_sentences=50)
    )
    return out
