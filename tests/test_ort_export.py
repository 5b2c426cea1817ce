"""`traductor export --ort` / `traductor convert marian --ort`: ORT-format variants gated against
the .onnx ones, covered by the manifest and the model card (needs torch: it exports)."""

from __future__ import annotations

import json

import pytest

from traductor.cli import build_parser
from traductor.export.package import PackageOptions
from traductor.runtime import Translator
from traductor.runtime.package import ORT_OPERATORS_FILE, read_config, verify_files

from .conftest import WORDS


@pytest.fixture(scope="module")
def ort_export(tiny_checkpoint, tmp_path_factory):
    from traductor.export.export import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("ort-export") / "tiny"
    export_checkpoint(
        ExportOptions(tiny_checkpoint, PackageOptions(out, int8=True, ort=True), dev_sentences=30)
    )
    return out


def test_export_with_ort_writes_gated_ort_variants(ort_export):
    cfg = read_config(ort_export)
    assert set(cfg.variants) == {"fp32", "int8", "fp32-ort", "int8-ort"}
    assert cfg.default_variant == "int8"
    for name in ("fp32", "int8"):
        v, o = cfg.variants[name], cfg.variants[name + "-ort"]
        assert (o.encoder, o.decoder, o.align) == tuple(
            f.replace(".onnx", ".ort") for f in (v.encoder, v.decoder, v.align)
        )
        assert (o.quantization, o.greedy_agreement) == (v.quantization, v.greedy_agreement)
    files = json.loads((ort_export / "manifest.json").read_text())["files"]
    ort_files = sorted(p.name for p in ort_export.glob("*.ort"))
    assert len(ort_files) == 6 and set(ort_files) <= set(files) and ORT_OPERATORS_FILE in files
    verify_files(ort_export, list(files), check_hash=True)
    card = (ort_export / "MODEL_CARD.md").read_text()
    assert "| int8-ort |" in card and "30/30 (as int8)" in card


def test_exported_ort_variant_translates_as_the_onnx_one(ort_export):
    texts = [" ".join(WORDS[i : i + 1 + i % 5]) for i in range(12)]
    onnx = Translator(ort_export, variant="int8").translate(texts, beam_size=4)
    assert Translator(ort_export, variant="int8-ort").translate(texts, beam_size=4) == onnx


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "run/best.pt", "--out", "pkg", "--ort"],
        ["convert", "marian", "some/dir", "--out", "pkg", "--ort"],
    ],
)
def test_ort_flag_reaches_the_package_options(argv):
    args = build_parser().parse_args(argv)
    assert PackageOptions.from_args(args).ort is True
    args = build_parser().parse_args(argv[:-1])
    assert PackageOptions.from_args(args).ort is False
