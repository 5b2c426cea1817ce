"""The ORT-format variants (ONNX Runtime Mobile, minimal builds): converted from the tiny model with
onnxruntime alone (no torch, no onnx), they translate exactly as the .onnx graphs they come from."""

from __future__ import annotations

import random
import shutil

import pytest

from traductor.cli import main
from traductor.export.ort import add_ort_variants
from traductor.runtime import Translator
from traductor.runtime.onnx_model import OnnxSeq2Seq
from traductor.runtime.package import (
    MANIFEST_FILE,
    ORT_OPERATORS_FILE,
    OrtFormatError,
    is_ort_format,
    ort_format_version,
    ort_version_span,
    read_config,
    verify_files,
    write_manifest,
)

from ..conftest import TINY_MODEL, WORDS


@pytest.fixture(scope="module")
def ort_package(tmp_path_factory):
    out = tmp_path_factory.mktemp("ort") / "tiny"
    shutil.copytree(TINY_MODEL, out)
    pkg = add_ort_variants(out, read_config(out))
    (out / "config.json").write_text(pkg.to_json())
    write_manifest(out)
    return out


def _texts(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(n)]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("beam", [1, 4])
def test_ort_variant_translates_exactly_as_its_onnx_variant(ort_package, variant, beam):
    texts = _texts(24)
    want = Translator(ort_package, variant=variant).translate_batch(
        texts, beam_size=beam, return_alignments=True
    )
    got = Translator(ort_package, variant=variant + "-ort").translate_batch(
        texts, beam_size=beam, return_alignments=True
    )
    assert [r.text for r in got] == [r.text for r in want]
    # Scores, per-token log-probs and alignments too, bit for bit (not approximately).
    assert [r.to_dict() for r in got] == [r.to_dict() for r in want]


def test_manifest_and_config_cover_the_ort_files(ort_package):
    cfg = read_config(ort_package)
    assert set(cfg.variants) == {"fp32", "int8", "fp32-ort", "int8-ort"}
    ort_files = [f for name in ("fp32-ort", "int8-ort") for f in cfg.variants[name].files]
    assert len(ort_files) == 6 and all(f.endswith(".ort") for f in ort_files)
    verify_files(ort_package, ort_files + [ORT_OPERATORS_FILE], check_hash=True)
    for name in ort_files:
        data = (ort_package / name).read_bytes()
        assert is_ort_format(data) and ort_format_version(data).isdigit()
    assert not is_ort_format((ort_package / "decoder.int8.onnx").read_bytes())


def test_operator_config_lists_the_contrib_operators_by_file_name(ort_package):
    text = (ort_package / ORT_OPERATORS_FILE).read_text()
    named = [line[4:] for line in text.splitlines() if line.startswith("# - ")]
    assert sorted(named) == sorted(p.name for p in ort_package.glob("*.ort"))
    rows = [line.split(";") for line in text.splitlines() if line and not line.startswith("#")]
    domains = {row[0] for row in rows}
    assert {"ai.onnx", "com.microsoft"} <= domains
    assert all(len(row) == 3 and row[1].isdigit() and row[2] for row in rows)


def test_a_copy_with_only_ort_files_loads_its_int8_ort_variant(ort_package, tmp_path):
    phone = tmp_path / "phone"
    shutil.copytree(ort_package, phone, ignore=shutil.ignore_patterns("*.onnx"))
    tr = Translator(phone)
    assert tr.variant == "int8-ort"
    assert tr.translate("casa perro gato") == Translator(ort_package).translate("casa perro gato")


def _from_a_newer_runtime(ort_package, tmp_path):
    """The package with its int8 decoder claiming an ORT format version this onnxruntime lacks."""
    newer = tmp_path / "newer"
    shutil.copytree(ort_package, newer)
    path = newer / "decoder.int8.ort"
    data = bytearray(path.read_bytes())
    start, end = ort_version_span(bytes(data))
    data[start:end] = b"9" * (end - start)
    path.write_bytes(bytes(data))
    write_manifest(newer)
    return newer


def test_ort_file_from_a_newer_onnxruntime_is_one_clear_error(ort_package, tmp_path):
    newer = _from_a_newer_runtime(ort_package, tmp_path)
    assert (newer / MANIFEST_FILE).is_file()
    with pytest.raises(
        OrtFormatError, match=r"decoder.int8.ort is in ORT format version 9+, which"
    ):
        OnnxSeq2Seq(newer, variant="int8-ort")


def test_cli_prints_the_ort_format_error_as_one_line(ort_package, tmp_path, capsys):
    newer = _from_a_newer_runtime(ort_package, tmp_path)
    code = main(["translate", "--model", str(newer), "--variant", "int8-ort", "casa"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "ORT format version" in err
