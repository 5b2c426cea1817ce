"""The package writer behind `traductor export` and `traductor convert`: build -> gate -> write.

A front end (a training checkpoint, a converted MarianMT) hands over a `PackageSource`; the writer
builds every graph and tokenizer file into a staging directory, runs every gate on the package as
the runtime loads it, and only then writes config.json, MODEL_CARD.md and manifest.json and moves
the directory into place. A failed gate leaves nothing behind. The schema it writes is the
runtime's (`traductor.runtime.package`), so writer and reader cannot disagree.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from tokenizers import Tokenizer

from traductor.runtime.onnx_model import OnnxSeq2Seq
from traductor.runtime.package import (
    CARD_FILE,
    CONFIG_FILE,
    SOURCE_TOKENIZER_FILE,
    TARGET_TOKENIZER_FILE,
    AlignmentSettings,
    DecodingDefaults,
    Dimensions,
    InputError,
    IONames,
    ModelPackageConfig,
    SpecialTokens,
    TokenizerFiles,
    Variant,
    write_manifest,
)
from traductor.runtime.quality import encode_sources

from .card import model_card
from .fused import alignment_layer
from .gates import (
    ExportError,
    fail_or_warn,
    fp32_against_pytorch,
    int8_against_fp32,
    measure_quality,
)
from .graphs import build_variants
from .ort import add_checked_ort_variants


@dataclass(frozen=True)
class PackageOptions:
    """How the writer builds, gates and writes a package (the flags export and convert share)."""

    out: Path  # the package directory to write
    int8: bool = False  # also write the int8 variant, gated against fp32
    beam: int = 4  # the default beam size written to config.json (and measured with test_data)
    # source<TAB>reference file: BLEU/chrF of every variant into config.json and the card
    test_data: Path | None = None
    card_notes: Path | None = None  # a markdown file appended to MODEL_CARD.md
    force: bool = False  # replace `out` if it exists
    accept_mismatch: bool = False  # write the package even if it fails verification (warns)
    ort: bool = False  # also write each variant in ORT format (+ required_operators.config)

    def __post_init__(self):
        for name in ("out", "test_data", "card_notes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        require_positive("beam", self.beam)

    def refuse_overwrite(self) -> None:
        """Fail early, before any model is loaded, if `out` exists and `force` is not set."""
        if self.out.exists() and not self.force:
            raise ExportError(f"{self.out} already exists; pass --force to replace it")

    @classmethod
    def from_args(cls, args) -> PackageOptions:
        """The package flags `traductor export` and `traductor convert marian` share."""
        return cls(
            out=args.out,
            int8=args.int8,
            beam=args.beam,
            test_data=args.test_data,
            card_notes=args.card_notes,
            force=args.force,
            accept_mismatch=args.accept_mismatch,
            ort=args.ort,
        )


def require_positive(name: str, value) -> None:
    """The options' one check of a count: an int (not a bool) of at least 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"invalid {name}={value!r}: must be an integer >= 1")


@dataclass
class PackageSource:
    """What a front end (a training checkpoint, a converted MarianMT) hands the package writer."""

    model: object  # traductor.training.model.Transformer, in eval mode
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer  # the same object as source_tokenizer for a joint vocabulary
    source_language: str
    target_language: str
    card_intro: str  # the model card's opening (what the model is, where it comes from)
    language_tags: dict = field(default_factory=dict)  # multi-target: language -> tag token
    min_length: int = 1
    converted_from: str | None = None
    # Extra gates against the original framework:
    # (fp32 package dir, dev source ids) -> (checks, problems)
    reference: Callable[[Path, list[list[int]]], tuple[dict, list[str]]] | None = None


def write_package(source: PackageSource, dev_texts: list[str], options: PackageOptions) -> int:
    """Build every graph, run every gate on `dev_texts`, then write the package atomically."""
    src = _dev_ids(source, dev_texts)
    with _staging(options.out) as tmp:
        t0 = time.time()
        pkg = _build(source, tmp, options)
        print(
            f"exported graphs in {time.time() - t0:.1f} s; verifying against PyTorch ...",
            file=sys.stderr,
        )
        _write_metadata(tmp, pkg)  # the gates load the package as users will
        pkg, checks, quality = _run_gates(source, src, tmp, pkg, options)
        if options.ort:
            pkg, checks = add_checked_ort_variants(tmp, pkg, checks, src)
        sizes = {
            name: (tmp / v.encoder).stat().st_size + (tmp / v.decoder).stat().st_size
            for name, v in pkg.variants.items()
        }
        notes = options.card_notes.read_text(encoding="utf-8") if options.card_notes else ""
        card = model_card(pkg, source.card_intro, checks, sizes, quality, options.test_data)
        _write_metadata(tmp, pkg, card + notes)
        if options.out.exists():
            shutil.rmtree(options.out)
        tmp.rename(options.out)
    _print_summary(checks, sizes, options.out)
    return 0


def _dev_ids(source: PackageSource, dev_texts: list[str]) -> list[list[int]]:
    """The dev sentences as source ids, after the first language tag for a multi-target model."""
    cfg = source.model.cfg
    tag = [source.source_tokenizer.token_to_id(t) for t in list(source.language_tags.values())[:1]]
    texts = encode_sources(source.source_tokenizer, dev_texts, cfg.eos_id, cfg.max_len - len(tag))
    return [tag + s for s in texts]


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden sibling of `out` to build in, removed whatever happens (renamed when complete)."""
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(source: PackageSource, tmp: Path, options: PackageOptions) -> ModelPackageConfig:
    """Every graph and tokenizer file into tmp -> the config that describes them."""
    io = IONames()
    variants = build_variants(source.model, tmp, io, options.int8)
    return _package_config(source, variants, _save_tokenizers(source, tmp), io, options.beam)


def _save_tokenizers(source: PackageSource, tmp: Path) -> TokenizerFiles:
    if source.target_tokenizer is source.source_tokenizer:
        files = TokenizerFiles()
        source.source_tokenizer.save(str(tmp / files.source))
        return files
    files = TokenizerFiles(SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE)
    source.source_tokenizer.save(str(tmp / files.source))
    source.target_tokenizer.save(str(tmp / files.target))
    return files


def _package_config(
    source: PackageSource,
    variants: dict[str, Variant],
    tokenizers: TokenizerFiles,
    io: IONames,
    beam: int,
) -> ModelPackageConfig:
    cfg = source.model.cfg
    return ModelPackageConfig(
        dims=Dimensions(
            cfg.vocab_size,
            cfg.d_model,
            cfg.n_heads,
            cfg.head_dim,
            cfg.n_encoder_layers,
            cfg.n_decoder_layers,
            cfg.max_len,
            cfg.pre_norm,
            cfg.target_vocab_size,
        ),
        special_tokens=SpecialTokens(cfg.pad_id, cfg.bos_id, cfg.eos_id, cfg.unk_id),
        source_language=source.source_language,
        target_language=source.target_language,
        variants=variants,
        default_variant="int8" if "int8" in variants else "fp32",
        io=io,
        decoding=DecodingDefaults(beam_size=beam, min_length=source.min_length),
        tokenizers=tokenizers,
        language_tags=dict(source.language_tags),
        converted_from=source.converted_from,
        alignment=AlignmentSettings(layer=alignment_layer(cfg.n_decoder_layers)),
    )


def _run_gates(
    source: PackageSource,
    src: list[list[int]],
    tmp: Path,
    pkg: ModelPackageConfig,
    options: PackageOptions,
) -> tuple[ModelPackageConfig, dict, list[dict]]:
    """fp32 against PyTorch and the front end's reference, int8 against fp32, then the quality
    figures -> (the config with the measured figures, checks per variant, quality rows)."""
    fp32 = fp32_against_pytorch(
        source.model, OnnxSeq2Seq(tmp, variant="fp32", verify=False), src, source.min_length
    )
    if source.reference is not None:
        extra, more = source.reference(tmp, src)
        fp32.checks.update(extra)
        fp32.problems.extend(more)
    fail_or_warn(fp32.problems, options.accept_mismatch)
    gates = {"fp32": fp32}
    if "int8" in pkg.variants:
        int8 = OnnxSeq2Seq(tmp, variant="int8", verify=False)
        gates["int8"] = int8_against_fp32(int8, src, fp32.tokens)
    variants = {
        name: replace(v, greedy_agreement=round(gates[name].agreement, 4))
        for name, v in pkg.variants.items()
    }
    pkg = replace(pkg, variants=variants)
    quality = []
    if options.test_data:
        pkg, quality = measure_quality(tmp, pkg, options.test_data, options.beam)
    return pkg, {name: gate.checks for name, gate in gates.items()}, quality


def _write_metadata(tmp: Path, pkg: ModelPackageConfig, card: str | None = None) -> None:
    """config.json (the one place it is written), the card when given, then the manifest."""
    (tmp / CONFIG_FILE).write_text(pkg.to_json())
    if card is not None:
        (tmp / CARD_FILE).write_text(card)
    write_manifest(tmp)


def _print_summary(checks: dict, sizes: dict[str, int], out: Path) -> None:
    for name, c in checks.items():
        figures = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()
        )
        print(f"{name}: {sizes[name] / 1e6:.2f} MB  {figures}")
    print(f"wrote {out}")
