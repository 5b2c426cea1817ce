"""`traductor explain`: translation, attention heatmap and alignment JSON for one text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from traductor.cli import main as cli_main  # noqa: E402
from traductor.runtime import Translator  # noqa: E402

from .conftest import TINY_MODEL  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_explain_writes_translation_png_and_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a folder with no data/: explain needs the model alone
    out = tmp_path / "explain"
    assert (
        cli_main(
            [
                "explain",
                "casa perro gato",
                "--model",
                str(TINY_MODEL),
                "--out",
                str(out),
                "--beam",
                "1",
            ]
        )
        == 0
    )
    text = (out / "translation.txt").read_text().strip()
    assert text == Translator(TINY_MODEL).translate("casa perro gato", beam_size=1)
    assert (out / "attention.png").read_bytes()[:8] == PNG and (
        out / "attention.png"
    ).stat().st_size > 2000
    info = json.loads((out / "explain.json").read_text())
    assert info["translation"] == text and info["source_words"] == ["casa", "perro", "gato"]
    assert info["alignment"] == [[0, 2], [1, 1], [2, 0]]  # the tiny model reverses words
    assert len(info["attention"]) == len(info["target_words"]) and len(info["attention"][0]) == 3
    assert all(abs(sum(row) - 1) < 1e-3 for row in info["attention"])
    assert [t["log_prob"] <= 0 for t in info["tokens"]] and info["log_prob"] <= 0


def test_explain_keeps_word_offsets_across_lines(tmp_path):
    out = tmp_path / "two"
    assert (
        cli_main(
            [
                "explain",
                "casa perro gato\nsol luna",
                "--model",
                str(TINY_MODEL),
                "--out",
                str(out),
                "--beam",
                "1",
            ]
        )
        == 0
    )
    info = json.loads((out / "explain.json").read_text())
    assert info["alignment"] == [[0, 2], [1, 1], [2, 0], [3, 4], [4, 3]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["explain", "   ", "--out", "{tmp}/x"], "non-empty text"),
        (["explain", "sol", "--out", "{tmp}/file.txt"], "must be a directory"),
        (
            ["explain", "sol", "--model", "{tmp}/nope", "--out", "{tmp}/x"],
            "model directory not found",
        ),
        (["explain", "sol", "--out", "{tmp}/x", "--beam", "0"], "beam_size"),
    ],
)
def test_explain_bad_arguments_are_one_line(tmp_path, args, message):
    (tmp_path / "file.txt").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--model" not in args:
        args += ["--model", str(TINY_MODEL)]
    proc = subprocess.run(
        [sys.executable, "-m", "traductor", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
