"""Bad input, bad model directories, providers, threads and memory: clear errors, never a crash."""

import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from traductor.runtime import ModelError, Translator
from traductor.runtime.package import write_manifest

from ..conftest import TINY_MODEL

ASSETS = Path(__file__).parents[1] / "assets"


@pytest.fixture(scope="module")
def tr():
    return Translator(TINY_MODEL, intra_threads=1)


@pytest.fixture
def model_copy(tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(TINY_MODEL, dst)
    return dst


# -- input ----------------------------------------------------------------------------------------


def test_empty_and_whitespace_strings_translate_to_empty(tr):
    assert tr.translate(["", "   ", "\n", "\t \t"]) == ["", "", "\n", ""]
    assert tr.translate("") == ""
    assert tr.translate([]) == []


def test_ten_thousand_character_paragraph_translates_without_error(tr):
    text = ("Casa perro gato sol luna agua. " * 400)[:10_000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tr.translate(text, beam_size=1)
    assert isinstance(out, str) and len(out) > 1000


def test_one_sentence_longer_than_the_model_is_split_with_a_warning(tr):
    text = " ".join(["casa perro gato"] * 40)  # no punctuation: one 120-subword "sentence"
    with pytest.warns(RuntimeWarning, match=r"exceeds the model's 63; translated in 2 pieces"):
        out = tr.translate(text, beam_size=1)
    assert out.strip()


def test_control_characters_are_removed_not_translated(tr):
    assert tr.translate("casa\x00 perro\x07\x1b gato\u200b") == tr.translate("casa perro gato")


def test_unseen_scripts_and_emoji_do_not_crash(tr):
    outs = tr.translate(["😀🎉", "中文字符", "Привет мир", "مرحبا", "casa 😀 perro"], beam_size=2)
    assert len(outs) == 5 and all(isinstance(o, str) for o in outs)


@pytest.mark.parametrize("bad", [None, 42, b"casa", ["casa", 3], {"a": 1}])
def test_non_string_input_raises_type_error(tr, bad):
    with pytest.raises(TypeError, match="str"):
        tr.translate(bad)


@pytest.mark.parametrize(
    "option, value, field",
    [
        ("beam_size", 0, "beam_size"),
        ("beam_size", "4", "beam_size"),
        ("length_penalty", -1.0, "length_penalty"),
        ("length_penalty", float("nan"), "length_penalty"),
        ("max_length", 0, "max_length"),
        ("batch_size", 0, "batch_size"),
        ("num_hypotheses", 5, "num_hypotheses"),
        ("return_scores", "yes", "return_scores"),
    ],
)
def test_bad_option_values_name_the_field(tr, option, value, field):
    with pytest.raises(ValueError, match=field):
        tr.translate("casa", **{option: value})


def test_unknown_option_is_rejected(tr):
    with pytest.raises(ValueError, match="beam"):
        tr.translate("casa", beam=4)


# -- the model directory --------------------------------------------------------------------------


def test_missing_model_dir_raises_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Translator(tmp_path / "nope")


def test_truncated_onnx_file_raises_clear_error(model_copy):
    f = model_copy / "decoder.int8.onnx"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated"):
        Translator(model_copy)


def test_truncated_onnx_file_with_updated_manifest_still_fails_cleanly(model_copy):
    f = model_copy / "decoder.onnx"
    f.write_bytes(f.read_bytes()[:5000])
    write_manifest(model_copy)
    with pytest.raises(ModelError, match="could not be loaded"):
        Translator(model_copy, variant="fp32")


def test_sha256_mismatch_raises_clear_error(model_copy):
    f = model_copy / "encoder.int8.onnx"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        Translator(model_copy)


def test_unknown_format_version_raises_clear_error(model_copy):
    cfg = json.loads((model_copy / "config.json").read_text())
    cfg["format_version"] = 99
    (model_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="unsupported model format version 99"):
        Translator(model_copy)


def test_missing_tokenizer_raises_clear_error(model_copy):
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="tokenizer.json"):
        Translator(model_copy)


def test_unknown_variant_lists_the_known_ones(model_copy):
    with pytest.raises(ModelError, match="fp32, int8"):
        Translator(model_copy, variant="int4")


def test_external_data_outside_the_model_dir_is_refused(model_copy):
    shutil.copy(ASSETS / "external-data-escape.onnx", model_copy / "encoder.int8.onnx")
    write_manifest(model_copy)
    with pytest.raises(ModelError, match="outside the model directory"):
        Translator(model_copy)


def _graph_with_external_data(location: str, where: str) -> bytes:
    """A small ONNX graph whose one float tensor lives in external data at `location`, held by an
    initializer, a Constant node's attribute or an If node's subgraph (`where`)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def tensor(name):
        t = helper.make_tensor(name, TensorProto.FLOAT, [4], [0.0] * 4)
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "16")):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        return t

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "XY")
    inits, nodes = [], [helper.make_node("Add", ["X", "W"], ["Y"])]
    if where == "initializer":
        inits.append(tensor("W"))
    elif where == "attribute":
        nodes.insert(0, helper.make_node("Constant", [], ["W"], value=tensor("c")))
    else:
        then = helper.make_graph([helper.make_node("Identity", ["T"], ["W"])], "then", [], [y], [])
        then.initializer.append(tensor("T"))
        nodes.insert(0, helper.make_node("If", ["C"], ["W"], then_branch=then, else_branch=then))
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize("where", ["initializer", "attribute", "subgraph"])
@pytest.mark.parametrize("escape", ["../outside.bin", "absolute", "symlink.bin"])
def test_external_data_escapes_are_refused_whatever_holds_the_tensor(tmp_path, where, escape):
    """Checked by the runtime itself: onnxruntime < 1.26 reads such paths (runtime/package.py)."""
    from traductor.runtime.package import check_external_data, external_data_locations

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "outside.bin").write_bytes(bytes(16))
    (model_dir / "inside.bin").write_bytes(bytes(16))
    (model_dir / "symlink.bin").symlink_to(tmp_path / "outside.bin")
    location = str(tmp_path / "outside.bin") if escape == "absolute" else escape
    graph = _graph_with_external_data(location, where)
    assert set(external_data_locations(graph)) == {location}
    with pytest.raises(ModelError, match="outside the model directory"):
        check_external_data(graph, "g.onnx", model_dir)
    check_external_data(_graph_with_external_data("inside.bin", where), "g.onnx", model_dir)


# -- providers ------------------------------------------------------------------------------------


def test_unavailable_provider_lists_what_is_available():
    with pytest.raises(ModelError, match=r"not available.*available: .*cpu"):
        Translator(TINY_MODEL, providers=("nonexistent-ep",))


def test_explicit_fallback_warns_and_reports_real_providers():
    with pytest.warns(RuntimeWarning, match="falling back"):
        tr = Translator(TINY_MODEL, providers=("nonexistent-ep",), fallback=("cpu",))
    assert tr.providers == ["CPUExecutionProvider"]


def test_full_provider_names_are_accepted():
    assert Translator(TINY_MODEL, providers=["CPUExecutionProvider"]).providers == [
        "CPUExecutionProvider"
    ]


# -- concurrency and memory -----------------------------------------------------------------------


def test_one_translator_shared_by_8_threads_matches_serial_use(tr):
    import random

    from ..conftest import WORDS

    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 7))) for _ in range(64)]
    serial = [tr.translate(t, beam_size=2) for t in texts]
    results: dict[int, str] = {}
    errors = []

    def work(offset):
        try:
            for i in range(offset, len(texts), 8):
                results[i] = tr.translate(texts[i], beam_size=2)
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [results[i] for i in range(len(texts))] == serial


@pytest.mark.slow
def test_memory_stays_flat_over_thousands_of_translations(tr):
    import resource

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 1e6

    texts = ["casa perro gato sol", "luna agua", "fuego tierra cielo mar río"]
    for _ in range(300):  # warm-up: allocator pools and arena growth settle
        tr.translate(texts, beam_size=2)
    before = rss_mb()
    for _ in range(1500):  # 4,500 more translations
        tr.translate(texts, beam_size=2)
    grown = rss_mb() - before
    assert grown < 20, f"RSS grew {grown:.1f} MB over 4,500 translations"


# -- CLI ------------------------------------------------------------------------------------------


def _cli(*args, stdin: bytes = b""):
    return subprocess.run(
        [sys.executable, "-m", "traductor", *args], input=stdin, capture_output=True, timeout=120
    )


def test_cli_reads_stdin_line_by_line():
    proc = _cli("translate", "--model", str(TINY_MODEL), stdin=b"casa perro\n\nsol luna agua\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split("\n") == ["perro casa", "", "agua luna sol", ""]


def test_cli_invalid_utf8_on_stdin_is_a_one_line_error():
    proc = _cli("translate", "--model", str(TINY_MODEL), stdin=b"casa\n\xff\xfe perro\n")
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "line 2 is not valid UTF-8" in err and "Traceback" not in err
    assert proc.stdout.decode() == "casa\n" or proc.stdout.decode().count("\n") == 1


def test_cli_user_errors_exit_non_zero_without_traceback(tmp_path):
    for args in (
        ["translate", "--model", str(tmp_path), "x"],
        ["translate", "--model", str(TINY_MODEL), "--beam", "0", "x"],
        ["translate", "--model", str(TINY_MODEL), "--provider", "cuda", "x"],
        ["translate", "--model", str(TINY_MODEL), "--input", str(tmp_path / "missing.txt")],
    ):
        proc = _cli(*args)
        err = proc.stderr.decode()
        assert (
            proc.returncode == 2 and "Traceback" not in err and err.startswith("traductor: error:")
        ), (args, err)
        assert len(err.strip().splitlines()) == 1


def test_cli_file_to_file_with_json(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("casa perro\nsol\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = _cli(
        "translate",
        "--model",
        str(TINY_MODEL),
        "--input",
        str(src),
        "--output",
        str(out),
        "--json",
        "--beam",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["translation"] for r in rows] == ["perro casa", "sol"]
    assert all(r["score"] <= 0 and r["tokens"] and r["ms_per_sentence"] > 0 for r in rows)


def test_runtime_never_imports_torch():
    code = (
        "import sys\n"
        "from traductor.runtime import Translator\n"
        f"print(Translator({str(TINY_MODEL)!r}).translate('casa perro'))\n"
        "from traductor.cli import main\n"
        f"main(['translate', '--model', {str(TINY_MODEL)!r}, 'sol luna'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'onnx' not in sys.modules, 'onnx was imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["perro casa", "luna sol"]


def test_training_commands_name_the_missing_extra_without_torch():
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here; `make test-runtime-only` runs this without it")
    for args in (
        ["train", "--data", "d", "--out", "o"],
        ["evaluate", "x.pt", "--data", "t.tsv"],
        ["export", "x.pt", "--out", "o"],
    ):
        proc = _cli(*args)
        err = proc.stderr.decode()
        assert (
            proc.returncode == 2 and "pip install 'traductor[" in err and "Traceback" not in err
        ), (args, err)


@pytest.mark.parametrize("blocked", ["onnxruntime", "tokenizers"])
def test_a_missing_base_dependency_is_one_line_naming_it(blocked):
    """As on a platform without a wheel for it: the CLI still starts and says what is missing."""
    import subprocess
    import sys

    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from traductor.cli import main\n"
        "sys.exit(main(['translate', 'hola']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install {blocked}" in lines[0], r.stderr
