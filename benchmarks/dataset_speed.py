"""Rows per second of `traductor translate-dataset` against one `translate_batch`, same sentences.

Takes the first --rows Spanish sentences of the Bible corpus (`make data`: data/bible/train.tsv),
writes them as one Parquet file, and times, each in a fresh process:

  translate_batch   one Translator, one translate_batch call over every row (no files, no parts)
  local             translate-dataset --engine local (one process, all cores)
  ray-1             --engine ray, a local Ray, 1 actor with all CPUs (threads = CPUs)
  ray-2             --engine ray, a local Ray, 2 actors with half the CPUs each
  cluster-2         --engine ray --address: a two-node cluster on this machine (`ray start --head
                    --num-cpus 1` and `ray start --address ... --num-cpus 1`), 1 actor per node,
                    run inside a private network and PID namespace (`unshare`, needs root) so Ray
                    stays on loopback and every process it started ends with the namespace

"rows/s" is the job's own rate (rows over the seconds of translation, as the CLI prints it);
"wall s" adds the start: loading the model, starting or joining Ray (and, for cluster-2, starting
the two nodes), scanning the input. Configs
are interleaved per repeat; the table reports medians. Prints a markdown table (--out: a file).

    flock /tmp/bench.lock .venv/bin/python benchmarks/dataset_speed.py --rows 20000 \\
        --out benchmarks/results/dataset_speed.md
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("translate_batch", "local", "ray-1", "ray-2", "cluster-2")
_RATE = re.compile(r"this run: (\d+) rows in ([\d.]+) s")
_NODES = re.compile(r"(\d+) actor\(s\) on (\d+) node\(s\)")

_ONE_BATCH = """
import sys, time
import pyarrow.parquet as pq
from traductor.runtime import Translator
texts = pq.read_table(sys.argv[1]).column("text").to_pylist()
tr = Translator(sys.argv[2] or None)
t0 = time.perf_counter()
tr.translate_batch(texts, beam_size=int(sys.argv[3]), batch_size=int(sys.argv[4]))
print(f"this run: {len(texts)} rows in {time.perf_counter() - t0:.3f} s")
"""

_CLUSTER = """
set -e
ip link set lo up
export RAY_AUTH_MODE=disabled  # a test cluster in its own network namespace
ray start --head --num-cpus 1 --port {port} --node-ip-address 127.0.0.1 --disable-usage-stats \\
    --include-dashboard false --temp-dir {tmp} >/dev/null
ray start --address 127.0.0.1:{port} --num-cpus 1 --node-ip-address 127.0.0.1 \\
    --disable-usage-stats >/dev/null
sleep 2
{command}
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Configs: " + ", ".join(CONFIGS) + ".",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default="data/bible/train.tsv", help="TSV, Spanish in column 1")
    p.add_argument("--rows", type=int, default=20_000, help="sentences to translate")
    p.add_argument("--model", default="", help="model package (default: the built-in es-en)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences decoded together")
    p.add_argument("--part-rows", type=int, default=1000, help="translate-dataset --part-rows")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, from above")
    p.add_argument("--repeats", type=int, default=1, help="rounds over the configs (medians)")
    p.add_argument("--work", help="folder for the input and outputs (default: a temporary one)")
    p.add_argument("--out", help="also write the markdown table to this file")
    return p.parse_args(argv)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _dataset_cmd(args, inp: Path, out: Path, *extra: str) -> list[str]:
    cmd = [_bin("traductor"), "translate-dataset", str(inp), "--output", str(out), "--overwrite"]
    cmd += ["--beam", str(args.beam), "--batch-size", str(args.batch_size)]
    cmd += ["--part-rows", str(args.part_rows), "--no-progress", *extra]
    return cmd + (["--model", args.model] if args.model else [])


def command(config: str, args, inp: Path, work: Path) -> list[str]:
    out = work / f"out-{config}"
    cpus = os.cpu_count() or 1
    if config == "translate_batch":
        model = args.model
        return [
            sys.executable,
            "-c",
            _ONE_BATCH,
            str(inp),
            model,
            str(args.beam),
            str(args.batch_size),
        ]
    if config == "local":
        return _dataset_cmd(args, inp, out)
    if config == "ray-1":
        return _dataset_cmd(
            args, inp, out, "--engine", "ray", "--actors", "1", "--cpus-per-actor", str(cpus)
        )
    if config == "ray-2":
        per = str(max(1, cpus // 2))
        return _dataset_cmd(
            args, inp, out, "--engine", "ray", "--actors", "2", "--cpus-per-actor", per
        )
    if config == "cluster-2":
        inner = _dataset_cmd(args, inp, out, "--engine", "ray", "--address", "127.0.0.1:6390")
        script = _CLUSTER.format(port=6390, command=" ".join(inner), tmp=work / "ray-tmp")
        # A new network namespace (loopback only) and PID namespace: when the shell ends, the
        # kernel ends every Ray process started inside it.
        env_path = f"PATH={Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        return [
            "unshare",
            "--net",
            "--pid",
            "--fork",
            "--mount-proc",
            "env",
            env_path,
            "sh",
            "-c",
            script,
        ]
    raise SystemExit(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")


def run(config: str, args, inp: Path, work: Path) -> dict:
    # A fresh output folder every round: an existing one's parts would be skipped (resumed).
    shutil.rmtree(work / f"out-{config}", ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        command(config, args, inp, work), capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    m = _RATE.search(text)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"{config} failed (exit {proc.returncode}):\n{text[-3000:]}")
    rows, seconds = int(m.group(1)), float(m.group(2))
    nodes = _NODES.search(text)
    return {
        "rows/s": rows / seconds,
        "wall": wall,
        "actors": int(nodes.group(1)) if nodes else 1,
        "nodes": int(nodes.group(2)) if nodes else 1,
    }


def same_output(work: Path, configs: list[str]) -> bool:
    import pyarrow.parquet as pq

    tables = []
    for c in configs:
        if c != "translate_batch":
            t = pq.read_table(work / f"out-{c}").sort_by("row_id")
            tables.append(t.select(["row_id", "translation", "score", "error"]))
    return all(t.equals(tables[0]) for t in tables[1:])


def main(argv=None) -> int:
    args = parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="dataset-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(ROOT / args.data, encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f][: args.rows]
    if len(texts) < args.rows:
        raise SystemExit(f"{args.data} has {len(texts)} rows, fewer than --rows {args.rows}")
    inp = work / "input.parquet"
    pq.write_table(pa.table({"text": texts}), inp)
    results: dict[str, list[dict]] = {c: [] for c in configs}
    for r in range(args.repeats):
        for c in configs:
            results[c].append(run(c, args, inp, work))
            print(f"round {r + 1} {c}: {results[c][-1]}", file=sys.stderr, flush=True)
    table = report(results, args, same_output(work, configs))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    if not args.work:
        shutil.rmtree(work)
    return 0


def report(results: dict, args, same: bool) -> str:
    cpus = os.cpu_count()
    base = statistics.median(r["rows/s"] for r in results["local"]) if "local" in results else None
    lines = [
        f"{args.rows} sentences (the first of {args.data}), beam {args.beam}, batch "
        f"{args.batch_size}, part {args.part_rows} rows, {cpus} CPUs; median of {args.repeats}; "
        f"outputs of every translate-dataset config identical: {'yes' if same else 'NO'}",
        "",
        "| config | actors x nodes | rows/s | rows/s per CPU | / local | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for c, runs in results.items():
        rate = statistics.median(r["rows/s"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        rel = f"{rate / base:.3f}" if base else "-"
        who = (
            f"{runs[0]['actors']} x {runs[0]['nodes']}" if c.startswith(("ray", "cluster")) else "-"
        )
        lines.append(f"| {c} | {who} | {rate:.1f} | {rate / cpus:.1f} | {rel} | {wall:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
