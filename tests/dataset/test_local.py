"""`traductor translate-dataset --engine local`: output equal to one translate_batch, parts that
resume after a crash, bad rows kept with their reason, and one-line errors before any work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from .conftest import TINY, expected, read_output, run, sentences, translations, write_dataset


def test_output_equals_one_translate_batch_over_every_format(tmp_path, tiny, capsys):
    texts = write_dataset(tmp_path / "in", n=120)
    assert (
        run(tmp_path / "in", "--output", tmp_path / "out", "--part-rows", "25", "--beam", "2") == 0
    )
    rows = read_output(tmp_path / "out")
    assert [r["row_id"] for r in rows] == list(range(120))
    assert [r["text"] for r in rows] == texts  # every input column is kept
    assert [r["id"] for r in rows] == list(range(120))
    assert translations(rows) == expected(tiny, texts, beam_size=2)
    assert all(r["error"] is None for r in rows)
    # Part names come from the input file and row range.
    names = sorted(p.name for p in (tmp_path / "out").glob("*.parquet"))
    assert names[0] == "a.jsonl.0000000000-0000000025.parquet"
    assert "b.csv.0000000025-0000000040.parquet" in names
    assert "120 rows" in capsys.readouterr().out


def test_jsonl_output_holds_the_same_rows_as_parquet(tmp_path):
    write_dataset(tmp_path / "in", n=60)
    assert run(tmp_path / "in", "--output", tmp_path / "pq", "--part-rows", "30") == 0
    args = ("--part-rows", "30", "--output-format", "jsonl")
    assert run(tmp_path / "in", "--output", tmp_path / "js", *args) == 0
    assert list((tmp_path / "js").glob("*.jsonl"))
    parquet, jsonl = read_output(tmp_path / "pq"), read_output(tmp_path / "js")
    assert [(r["row_id"], r["translation"], r["score"]) for r in parquet] == [
        (r["row_id"], r["translation"], r["score"]) for r in jsonl
    ]


def test_glob_and_single_file_inputs(tmp_path, tiny):
    texts = write_dataset(tmp_path / "in", n=60)
    assert run(str(tmp_path / "in" / "*.csv"), "--output", tmp_path / "g") == 0
    assert [r["text"] for r in read_output(tmp_path / "g")] == texts[20:40]
    assert run(tmp_path / "in" / "c.parquet", "--output", tmp_path / "f") == 0
    assert translations(read_output(tmp_path / "f")) == expected(tiny, texts[40:])


def _bad_jsonl(path):
    good = sentences(6, seed=5)
    lines = [
        json.dumps({"text": good[0]}),
        json.dumps({"text": None}),
        json.dumps({"text": 7}),
        json.dumps({"text": "   "}),
        json.dumps({"text": "sol " * 40}),  # over --max-chars 100
        b'{"text": "caf\xe9 sol"}',  # Latin-1, not UTF-8
        '{"text": "sol',  # cut short
        json.dumps({"other": "sol"}),
        json.dumps(["sol"]),
        json.dumps({"text": "sol \ud800"}),  # a lone surrogate
        json.dumps({"text": good[1]}),
    ]
    with open(path, "wb") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return good


def test_bad_rows_are_kept_with_their_reason(tmp_path, tiny, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    good = _bad_jsonl(tmp_path / "in" / "a.jsonl")
    pq.write_table(pa.table({"body": ["sol luna", "mar"]}), tmp_path / "in" / "b.parquet")
    out = tmp_path / "out"
    assert run(tmp_path / "in", "--output", out, "--max-chars", "100", "--part-rows", "4") == 0
    rows = read_output(out)
    assert len(rows) == 13  # one output row per input row
    errors = [r["error"] for r in rows]
    assert errors[0] is None and errors[10] is None
    assert errors[1] == "null"
    assert errors[2] == "not a string: int"
    assert errors[3] == "empty"
    assert errors[4].startswith("too long: 160 characters")
    assert errors[5].startswith("invalid UTF-8")
    assert errors[6].startswith("invalid JSON")
    assert errors[7].startswith("missing column")
    assert errors[8] == "not a JSON object: list"
    assert errors[9].startswith("invalid UTF-8: lone surrogate")
    assert errors[11].startswith("missing column") and errors[12].startswith("missing column")
    assert all(r["translation"] is None and r["score"] is None for r in rows if r["error"])
    assert [translations(rows)[i] for i in (0, 10)] == expected(tiny, good[:2])
    assert rows[11]["body"] == "sol luna"  # the file without the column keeps its own columns
    summary = capsys.readouterr().out
    assert "13 rows" in summary and "11 errors" in summary and "missing column 3" in summary


def test_rerun_skips_written_parts_and_redoes_a_missing_one(tmp_path):
    write_dataset(tmp_path / "in", n=90)
    out = tmp_path / "out"
    assert run(tmp_path / "in", "--output", out, "--part-rows", "20") == 0
    first = read_output(out)
    parts = sorted(out.glob("*.parquet"))
    kept = {p: p.stat().st_mtime_ns for p in parts[1:]}
    parts[0].unlink()
    (out / f".{parts[1].name}.tmp-1-deadbeef").write_bytes(b"half a part")  # a killed writer's
    assert run(tmp_path / "in", "--output", out, "--part-rows", "20") == 0
    assert read_output(out) == first
    assert {p: p.stat().st_mtime_ns for p in parts[1:]} == kept  # not rewritten
    assert not list(out.glob(".*.tmp-*"))


def test_changed_options_or_model_refused_unless_overwrite(tmp_path, capsys):
    write_dataset(tmp_path / "in", n=30)
    out = tmp_path / "out"
    assert run(tmp_path / "in", "--output", out, "--beam", "1") == 0
    capsys.readouterr()
    assert run(tmp_path / "in", "--output", out, "--beam", "2") == 2
    err = capsys.readouterr().err
    assert "beam_size: 1 -> 2" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert run(tmp_path / "in", "--output", out, "--beam", "1", "--variant", "fp32") == 2
    assert "variant" in capsys.readouterr().err
    assert run(tmp_path / "in", "--output", out, "--beam", "2", "--overwrite") == 0
    assert json.loads((out / "_manifest.json").read_text())["options"]["beam_size"] == 2
    # Batch size changes no translation: resuming with another one is allowed.
    assert run(tmp_path / "in", "--output", out, "--beam", "2", "--batch-size", "3") == 0


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("traductor: error:")
    return err


def test_missing_input_unknown_column_and_unreadable_file_fail_before_work(tmp_path, capsys):
    write_dataset(tmp_path / "in", n=30)
    out = tmp_path / "out"
    assert run(tmp_path / "nope.jsonl", "--output", out) == 2
    assert "input not found" in _one_line_error(capsys)
    assert run(tmp_path / "in", "--output", out, "--column", "texto") == 2
    assert "no input file has a column 'texto'" in _one_line_error(capsys)
    assert run(str(tmp_path / "in" / "*.txt"), "--output", out) == 2
    assert "no .jsonl, .csv or .parquet file matches" in _one_line_error(capsys)
    (tmp_path / "in" / "d.parquet").write_bytes(b"not parquet at all")
    assert run(tmp_path / "in", "--output", out) == 2
    assert "d.parquet: cannot read as Parquet" in _one_line_error(capsys)
    assert not out.exists()  # nothing started
    (tmp_path / "in" / "d.parquet").unlink()
    (tmp_path / "in" / "e.csv").write_text("id,text\n1,sol\n2,luna,mar\n")  # a row too many
    assert run(tmp_path / "in", "--output", out) == 2
    assert "e.csv: cannot read as CSV" in _one_line_error(capsys)
    assert not out.exists()


def test_output_directory_with_other_files_is_refused(tmp_path, capsys):
    write_dataset(tmp_path / "in", n=30)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert run(tmp_path / "in", "--output", tmp_path / "out", "--overwrite") == 2
    assert "not a translate-dataset output" in _one_line_error(capsys)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_engine_ray_without_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    write_dataset(tmp_path / "in", n=30)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    assert run(tmp_path / "in", "--output", tmp_path / "out", "--engine", "ray") == 2
    assert "pip install 'traductor[ray]'" in _one_line_error(capsys)


def _cli(*argv) -> list[str]:
    return [sys.executable, "-m", "traductor", "translate-dataset", *map(str, argv)]


def test_driver_killed_mid_job_then_rerun_gives_the_uninterrupted_output(tmp_path):
    write_dataset(tmp_path / "in", n=1500)
    args = (tmp_path / "in", "--model", TINY, "--part-rows", "50", "--beam", "1")
    assert run(*args[:1], "--output", tmp_path / "ref", *args[1:]) == 0
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(*args, "--output", out), stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list(out.glob("*.parquet"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("*.parquet")))
    assert 3 <= written < 30, "the driver was not killed mid-job"
    assert subprocess.run(_cli(*args, "--output", out), capture_output=True).returncode == 0
    assert read_output(out) == read_output(tmp_path / "ref")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "ref").iterdir()
    )


def test_without_the_dataset_extra_the_error_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    monkeypatch.delitem(sys.modules, "traductor.runtime.dataset.cli", raising=False)
    assert run(tmp_path, "--output", tmp_path / "out") == 2
    assert "pip install 'traductor[dataset]'" in _one_line_error(capsys)
