"""Does asking nothing of alignments cost anything? Decoding speed before and after they existed.

    .venv/bin/python benchmarks/experiments/alignment_speed.py --before 3b85e6d \
        --out benchmarks/results/alignment_speed.md

"before" is a git worktree of REF (a commit from before the alignment graph), run with its own
runtime (put first on the child's PYTHONPATH, laid out as an installed package) and its own
models/es-en; "after" is the installed package with this checkout's models/es-en, plain, and with
return_alignments=True for scale. Each measurement runs in a fresh process, the engines
interleaved, median of --repeats. Prints a markdown table; --out also writes it there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = [("greedy", 1, 1), ("greedy", 1, 16), ("beam 4", 4, 16)]  # (name, beam, batch)


def _worker(model: str, beam: str, batch: str, align: str, n: str, verses: str) -> dict:
    """In the child: translate the first n verses once, timed (after one warm-up batch)."""
    from traductor.runtime import Translator

    beam, batch, n = int(beam), int(batch), int(n)
    lines = [v for v in Path(verses).read_text(encoding="utf-8").splitlines() if v.strip()][:n]
    tr = Translator(model, variant="int8")
    opts = {"beam_size": beam, "batch_size": batch}
    if align == "1":
        opts["return_alignments"] = True
    tr.translate(lines[:batch], **opts)
    t0 = time.perf_counter()
    out = tr.translate(lines, **opts)
    dt = time.perf_counter() - t0
    texts = [o if isinstance(o, str) else o.text for o in out]
    return {"seconds": dt, "texts": texts}


def _package_path(checkout: Path) -> str:
    """A folder where `import traductor` finds a checkout's code (its package-dir layout: src/
    traductor plus training, export and runtime at the root), for the child's PYTHONPATH."""
    root = Path(tempfile.mkdtemp(prefix="traductor-before-"))
    pkg = root / "traductor"
    pkg.mkdir()
    for f in (checkout / "src" / "traductor").iterdir():
        (pkg / f.name).symlink_to(f.resolve())
    for sub in ("training", "export", "runtime"):
        (pkg / sub).symlink_to((checkout / sub).resolve())
    return str(root)


def run(code: str | None, model: Path, beam: int, batch: int, align: bool, n: int, verses: Path):
    """One measurement in a fresh process; `code` is a PYTHONPATH entry imported before the
    installed package (None: the installed package)."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    cmd = [sys.executable, __file__, "--worker", str(model), str(beam), str(batch)]
    cmd += ["1" if align else "0", str(n), str(verses)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd="/tmp", env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(_worker(*sys.argv[2:8])))
        return 0
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--before", required=True, help="git ref from before the alignment graph")
    p.add_argument("--verses", default=str(ROOT / "benchmarks" / "test-books.es.txt"))
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="also write the markdown table here")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp()) / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work), args.before],
        check=True,
        capture_output=True,
    )
    try:
        engines = [
            ("before", _package_path(work), work, False),
            ("after", None, ROOT, False),
            ("after, return_alignments=True", None, ROOT, True),
        ]
        times, texts = _measure(engines, args)
        report = "\n".join(_report(times, texts, args)) + "\n"
        print(report)
        if args.out:
            Path(args.out).write_text(report)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work)],
            capture_output=True,
        )
    return 0


def _measure(engines, args) -> tuple[dict, dict]:
    """Every repeat, every workload, every engine (order rotated each repeat)."""
    times: dict = {}
    texts: dict = {}
    for r in range(args.repeats):
        for name, beam, batch in WORKLOADS:
            order = engines[r % len(engines) :] + engines[: r % len(engines)]
            for ename, code, root, align in order:
                model = root / "models" / "es-en"
                res = run(code, model, beam, batch, align, args.sentences, Path(args.verses))
                times.setdefault((ename, name, batch), []).append(res["seconds"])
                texts[(ename, name, batch)] = res["texts"]
    return times, texts


def _report(times: dict, texts: dict, args) -> list[str]:
    lines = [
        f"int8 es-en, {args.sentences} test verses, one process per run, median of "
        f"{args.repeats} interleaved runs (seconds; lower is better). before = {args.before}.",
        "",
        "| workload | before | after | after / before | after, with alignments "
        "| same translations before and after |",
        "|---|---|---|---|---|---|",
    ]
    for name, _, batch in WORKLOADS:
        b = statistics.median(times[("before", name, batch)])
        a = statistics.median(times[("after", name, batch)])
        al = statistics.median(times[("after, return_alignments=True", name, batch)])
        same = texts[("before", name, batch)] == texts[("after", name, batch)]
        lines.append(
            f"| {name} b{batch} | {b:.2f} | {a:.2f} | {a / b:.3f} | {al:.2f} ({al / a:.2f}x) "
            f"| {'yes' if same else 'no'} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
