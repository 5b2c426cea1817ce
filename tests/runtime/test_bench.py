"""`traductor bench` runs every available provider, skips missing ones, writes JSON and Markdown."""

import json
import subprocess
import sys

from ..conftest import TINY_MODEL


def _bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "traductor", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_measures_each_setting_and_skips_missing_providers(tmp_path):
    sentences = tmp_path / "s.txt"
    sentences.write_text("casa perro\nsol luna agua\nrey\ngato monte pan\n", encoding="utf-8")
    out = tmp_path / "b"
    proc = _bench(
        "--model",
        str(TINY_MODEL),
        "--providers",
        "cpu,not-an-ep",
        "--variants",
        "int8",
        "--batch-sizes",
        "1,2",
        "--beam-sizes",
        "1,2",
        "--threads",
        "auto,1",
        "--input",
        str(sentences),
        "--repeats",
        "2",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "results.json").read_text())
    assert [s["provider"] for s in report["skipped"]] == ["not-an-ep"]
    auto, result = report["results"]
    assert (
        auto["threads"] is None and result["threads"] == 1
    )  # auto = the Translator's default (threads by work)
    assert (
        result["provider"] == "CPUExecutionProvider"
        and result["variant"] == "int8"
        and result["load_s"] > 0
    )
    assert [(s["beam"], s["batch"]) for s in result["settings"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for s in result["settings"]:
        assert s["sentences"] == 4 and s["tokens"] >= 4 and s["tokens_per_s"] > 0
        assert s["latency_p50_ms"] <= s["latency_p90_ms"] <= s["latency_p99_ms"]
    assert result["first_token_ms_p50"] > 0 and result["peak_rss_mb"] > 10
    table = (out / "results.md").read_text()
    assert (
        table.count("| cpu | int8 | 1 |") == 4
        and table.count("| cpu | int8 | auto |") == 4
        and "Skipped: not-an-ep" in table
    )

    merged = tmp_path / "m"
    proc = _bench("--merge", str(out), str(out), "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((merged / "results.json").read_text())["results"]) == 4


def test_bench_rejects_bad_arguments_with_one_line(tmp_path):
    proc = _bench("--model", str(TINY_MODEL), "--batch-sizes", "0", "--out", str(tmp_path))
    assert (
        proc.returncode == 2 and "--batch-sizes" in proc.stderr and "Traceback" not in proc.stderr
    )
