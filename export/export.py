"""`traductor export`: a training checkpoint -> a verified, self-describing model package.

`export_checkpoint(ExportOptions(...))` loads the checkpoint and hands it to the package writer
(package.py: build -> gate -> write); `rebuild_fp32` restores the fp32 graphs of a package that
ships int8 only; `main(args)` is the CLI's entry, which turns its arguments into options.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from traductor.runtime.onnx_model import OnnxSeq2Seq
from traductor.runtime.package import (
    CONFIG_FILE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
    InputError,
    read_config,
    sha256_of,
)
from traductor.training.checkpoint import load_model, save_compact
from traductor.training.data import read_tsv

from .gates import PARITY_ATOL, ExportError, check_parity
from .graphs import export_alignment, export_graphs, quiet_exporters
from .package import PackageOptions, PackageSource, require_positive, write_package


@dataclass(frozen=True)
class ExportOptions:
    """`traductor export`: which checkpoint, which dev sentences, and how to write the package."""

    checkpoint: Path  # a .pt checkpoint from `traductor train`, or compact .npz weights
    package: PackageOptions  # where and how the package is written (shared with `convert`)
    # source<TAB>target file for the greedy checks; None: the training run's dev.tsv
    dev: Path | None = None
    dev_sentences: int = 100  # dev sentences used by the greedy checks
    source_lang: str = "es"  # source language code written to config.json
    target_lang: str = "en"  # target language code written to config.json
    save_weights: Path | None = None  # also write the checkpoint's weights in float16 (.npz) here

    def __post_init__(self):
        for name in ("checkpoint", "dev", "save_weights"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if not isinstance(self.package, PackageOptions):
            raise InputError(f"invalid package={self.package!r}: must be a PackageOptions")
        require_positive("dev_sentences", self.dev_sentences)
        for name in ("source_lang", "target_lang"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InputError(f"invalid {name}={getattr(self, name)!r}: must be a language code")


def main(args) -> int:
    """The CLI's `traductor export`: its arguments -> ExportOptions (or --rebuild-fp32)."""
    if getattr(args, "rebuild_fp32", False):
        return rebuild_fp32(Path(args.checkpoint), Path(args.out))
    options = ExportOptions(
        checkpoint=args.checkpoint,
        package=PackageOptions.from_args(args),
        dev=args.dev,
        dev_sentences=args.dev_sentences,
        source_lang=args.source_lang,
        target_lang=args.target_lang,
        save_weights=getattr(args, "save_weights", None),
    )
    return export_checkpoint(options)


def export_checkpoint(options: ExportOptions) -> int:
    """load -> verify -> write: the checkpoint's model and tokenizer as a package (package.py)."""
    quiet_exporters()
    options.package.refuse_overwrite()
    with torch.no_grad():
        model, tok, state = load_model(options.checkpoint)
        if options.save_weights:
            written = save_compact(state, options.save_weights)
            print(f"wrote {written} (float16 weights)", file=sys.stderr)
        train_data = (state.get("train_config") or {}).get("data", ".")
        pairs, _ = read_tsv(
            options.dev or Path(train_data) / "dev.tsv", limit=options.dev_sentences
        )
        intro = trained_intro(model, state)
        source = PackageSource(model, tok, tok, options.source_lang, options.target_lang, intro)
        return write_package(source, [p.source for p in pairs], options.package)


def trained_intro(model, state: dict) -> str:
    """The card's opening for a model this project trained."""
    tc = state.get("train_config") or {}
    d = model.cfg
    data = "/".join(Path(tc.get("data", "unknown")).parts[-2:])
    return (
        "Transformer encoder-decoder (Vaswani et al., 2017), exported by `traductor export`.\n\n"
        f"- Architecture: d_model {d.d_model}, {d.n_heads} heads, {d.n_encoder_layers} encoder + "
        f"{d.n_decoder_layers} decoder layers,\n"
        f"  {'pre' if d.pre_norm else 'post'}-LayerNorm, tied embeddings, vocabulary "
        f"{d.vocab_size} (joint BPE), max length {d.max_len}.\n"
        f"- Training data: `{data}`; {state.get('step', '?')} steps; "
        "best dev BLEU during training\n"
        f"  {state.get('best_bleu', float('nan')):.2f} (greedy, PyTorch).\n"
    )


def rebuild_fp32(weights: Path, package: Path) -> int:
    """Add the fp32 graphs to an existing package (one that ships int8 only, as the repository
    tracks it), rebuilt from the checkpoint or compact weights it was exported from. The parity gate
    against PyTorch must pass; the files must also match the package's manifest, unless this
    onnx/torch serializes them differently, in which case the manifest entries are updated with a
    warning."""
    quiet_exporters()
    pkg = read_config(package)
    if "fp32" not in pkg.variants:
        raise ExportError(f"{package}/config.json describes no fp32 variant to rebuild")
    with torch.no_grad():
        model, tok, _ = load_model(weights)
        _check_same_model(model, tok, pkg, weights, package)
        fp32 = pkg.variants["fp32"]
        tmp = package.parent / f".{package.name}.fp32.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            export_graphs(model, tmp, pkg.io, fp32.encoder, fp32.decoder)
            if fp32.align:
                export_alignment(model, tmp / fp32.align, pkg.io)
            for f in (CONFIG_FILE, TOKENIZER_FILE):
                shutil.copy2(package / f, tmp / f)
            diff = check_parity(model, OnnxSeq2Seq(tmp, variant="fp32", verify=False))
            if diff > PARITY_ATOL:
                raise ExportError(
                    f"rebuilt fp32 log-probs differ from PyTorch by {diff:.2e} > {PARITY_ATOL}; "
                    f"{package} left as it was"
                )
            changed = _move_into_package(tmp, package, fp32.files, diff)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"fp32 rebuilt into {package}: parity with PyTorch {diff:.1e} (gate {PARITY_ATOL}), "
        f"{'files identical to the manifest' if not changed else 'manifest updated'}"
    )
    return 0


def _check_same_model(model, tok: Tokenizer, pkg, weights: Path, package: Path) -> None:
    """Refuse weights whose dimensions or tokenizer are not the package's."""
    cfg, d = model.cfg, pkg.dims
    fields = ("vocab_size", "d_model", "n_heads", "n_encoder_layers", "n_decoder_layers")
    fields += ("max_len", "pre_norm")
    ours = tuple(getattr(cfg, f) for f in fields)
    if ours != tuple(getattr(d, f) for f in fields):
        raise ExportError(
            f"{weights} is not the model of {package}: dimensions {ours} differ from config.json's"
        )
    if tok.to_str() != Tokenizer.from_file(str(package / TOKENIZER_FILE)).to_str():
        raise ExportError(
            f"{weights} was trained with another tokenizer than {package}/{TOKENIZER_FILE}"
        )


def _move_into_package(tmp: Path, package: Path, files: list[str], diff: float) -> list[str]:
    """Move the rebuilt files into the package -> the names whose bytes differ from the manifest
    (whose entries are then updated, with a warning)."""
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    changed = []
    for f in files:
        entry = {"sha256": sha256_of(tmp / f), "size": (tmp / f).stat().st_size}
        if manifest["files"].get(f) != entry:
            changed.append(f)
            manifest["files"][f] = entry
    for f in files:
        (tmp / f).replace(package / f)
    if changed:
        (package / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        print(
            f"WARNING: the rebuilt {', '.join(changed)} differ byte-wise from the files the "
            "manifest recorded (another onnx or torch version?); parity with PyTorch holds "
            f"({diff:.1e}), manifest.json updated",
            file=sys.stderr,
        )
    return changed
