"""Models by name: built-in, user (XDG data dir) and paths; packages shipping only some variants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from traductor.cli import main as cli_main
from traductor.runtime import Translator
from traductor.runtime.models import (
    add_model,
    builtin_root,
    list_models,
    remove_model,
    resolve_model,
    user_root,
)
from traductor.runtime.onnx_model import check_variant, choose_variant
from traductor.runtime.package import ModelError

from ..conftest import TINY_MODEL


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("TRADUCTOR_MODEL", raising=False)
    return home


def int8_only(tmp_path: Path) -> Path:
    """The tiny package as the wheel ships a model: int8 graphs only, config and manifest as is."""
    pkg = tmp_path / "int8-only"
    shutil.copytree(TINY_MODEL, pkg)
    for f in ("encoder.onnx", "decoder.onnx", "align.onnx"):
        (pkg / f).unlink()
    return pkg


def test_user_root_follows_xdg_data_home(data_home):
    assert user_root() == data_home / "traductor" / "models"


def test_the_built_in_model_resolves_by_name_and_by_default(data_home):
    assert (builtin_root() / "es-en" / "config.json").is_file()
    assert resolve_model("es-en") == builtin_root() / "es-en"
    assert resolve_model(None) == builtin_root() / "es-en"
    assert [e.name for e in list_models() if e.origin == "built-in"] == ["es-en"]


def test_environment_variable_and_paths_override_the_default(data_home, monkeypatch):
    monkeypatch.setenv("TRADUCTOR_MODEL", str(TINY_MODEL))
    assert resolve_model(None) == TINY_MODEL
    assert Translator().config.dims.d_model == 32
    monkeypatch.delenv("TRADUCTOR_MODEL")
    assert resolve_model(str(TINY_MODEL)) == TINY_MODEL


def test_add_translate_by_name_and_remove(data_home):
    entry = add_model(TINY_MODEL, name="tiny")
    assert entry.path == data_home / "traductor" / "models" / "tiny"
    assert sorted(p.name for p in entry.path.iterdir()) == sorted(
        [*json.loads((TINY_MODEL / "manifest.json").read_text())["files"], "manifest.json"]
    )
    assert [(e.name, e.origin) for e in list_models()][0] == ("tiny", "user")
    by_name = Translator("tiny").translate(["sol luna", "casa perro gato"])
    assert by_name == Translator(TINY_MODEL).translate(["sol luna", "casa perro gato"])
    with pytest.raises(ModelError, match="already exists"):
        add_model(TINY_MODEL, name="tiny")
    add_model(TINY_MODEL, name="tiny", force=True)
    remove_model("tiny")
    assert not entry.path.exists()
    with pytest.raises(ModelError, match="no model named 'tiny'"):
        Translator("tiny")


def test_add_refuses_a_damaged_package_and_installs_nothing(data_home, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(TINY_MODEL, bad)
    data = bytearray((bad / "decoder.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "decoder.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="decoder.int8.onnx does not match its sha256"):
        add_model(bad)
    assert not (user_root() / "bad").exists()
    assert (
        not user_root().exists() or list(user_root().iterdir()) == []
    )  # no partial copy left behind


def test_add_refuses_a_manifest_that_points_outside_the_package(data_home, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(TINY_MODEL, evil)
    manifest = json.loads((evil / "manifest.json").read_text())
    manifest["files"]["../../outside.txt"] = {"sha256": "0" * 64, "size": 1}
    (evil / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="plain file names"):
        add_model(evil)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../up", "x" * 101, "-flag"])
def test_bad_model_names_are_refused(data_home, name):
    with pytest.raises(ModelError, match="invalid model name"):
        add_model(TINY_MODEL, name=name)


def test_built_in_models_are_not_removed(data_home):
    with pytest.raises(ModelError, match="built in"):
        remove_model("es-en")
    with pytest.raises(ModelError, match="no user model named 'nope'"):
        remove_model("nope")


def test_a_package_with_only_int8_loads_it_and_names_what_is_missing(data_home, tmp_path):
    pkg = int8_only(tmp_path)
    t = Translator(pkg)
    assert t.variant == "int8" and t.model.available == ["int8"]
    assert t.translate("sol luna") == Translator(TINY_MODEL, variant="int8").translate("sol luna")
    with pytest.raises(ModelError, match="only the int8 variant.*fp32 is not installed"):
        Translator(pkg, variant="fp32")
    # OpenVINO would take fp32, which is absent: int8 is chosen and refused with the reason.
    v = choose_variant(t.config, ["OpenVINOExecutionProvider"], ["int8"])
    with pytest.raises(ModelError, match="does not run on OpenVINOExecutionProvider"):
        check_variant(t.config, v, ["OpenVINOExecutionProvider"], ["int8"])
    add_model(pkg, name="small")  # installs what is there, verified
    installed = sorted(p.name for p in (user_root() / "small").iterdir())
    listed = json.loads((pkg / "manifest.json").read_text())["files"]
    assert installed == sorted([f for f in listed if (pkg / f).is_file()] + ["manifest.json"])
    assert "decoder.onnx" not in installed and "decoder.int8.onnx" in installed


def test_one_missing_graph_of_a_variant_is_reported_as_damage(tmp_path):
    pkg = tmp_path / "half"
    shutil.copytree(TINY_MODEL, pkg)
    (pkg / "decoder.int8.onnx").unlink()
    with pytest.raises(ModelError, match="missing decoder.int8.onnx"):
        Translator(pkg, variant="int8")


def test_models_cli_lists_adds_and_removes(data_home, tmp_path, capsys):
    pkg = int8_only(tmp_path)
    assert cli_main(["models", "add", str(pkg), "--name", "tiny8"]) == 0
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny8  es->en  [user]" in out and "es-en  es->en  [built-in]" in out
    assert "fp32" in out and "not installed here" in out
    assert cli_main(["translate", "--model", "tiny8", "sol luna"]) == 0
    assert capsys.readouterr().out.strip() == Translator(TINY_MODEL, variant="int8").translate(
        "sol luna"
    )
    assert cli_main(["models", "remove", "tiny8"]) == 0
    assert cli_main(["models", "remove", "tiny8"]) == 2
    assert "no user model named 'tiny8'" in capsys.readouterr().err
    assert cli_main(["translate", "--model", "nope", "x"]) == 2
    err = capsys.readouterr().err
    assert "no model named 'nope'" in err and "es-en (built-in)" in err


def test_a_format_5_package_still_loads(tmp_path):
    """Format 5 packages (one joint tokenizer, no alignment graph) load and translate alike."""
    old = tmp_path / "v5"
    shutil.copytree(TINY_MODEL, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["format_version"] = 5
    for key in ("tokenizers", "language_tags", "converted_from", "alignment"):
        cfg.pop(key, None)
    cfg["decoding"].pop("min_length", None)
    for v in cfg["variants"].values():
        (old / v.pop("align")).unlink()
    (old / "config.json").write_text(json.dumps(cfg))
    from traductor.runtime.package import write_manifest

    write_manifest(old)
    texts = ["sol luna", "casa perro gato"]
    assert Translator(old).translate(texts) == Translator(TINY_MODEL).translate(texts)
    with pytest.raises(ModelError, match="no alignment graph"):
        Translator(old).translate("sol", return_alignments=True)
