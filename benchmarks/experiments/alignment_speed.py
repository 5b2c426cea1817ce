"""Does asking nothing of alignments cost anything? Decoding speed before and after they existed.

    .venv/bin/python benchmarks/alignment_speed.py --before REF --out benchmarks/results/alignment_speed.md

"before" is a git worktree of REF (a commit from before the alignment graph), run with its own
runtime and its own models/es-en; "after" is this checkout, plain, and with return_alignments=True
for scale. Each measurement runs in a fresh process, the engines interleaved, median of --repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from traductor.runtime import Translator
root, beam, batch, align, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
verses = [v for v in open(sys.argv[6], encoding="utf-8").read().splitlines() if v.strip()][:n]
tr = Translator(root + "/models/es-en", variant="int8")
opts = {"beam_size": beam, "batch_size": batch}
if align:
    opts["return_alignments"] = True
tr.translate(verses[:batch], **opts)
t0 = time.perf_counter()
out = tr.translate(verses, **opts)
dt = time.perf_counter() - t0
texts = [o if isinstance(o, str) else o.text for o in out]
print(json.dumps({"seconds": dt, "texts": texts}))
"""


def run(root: Path, beam: int, batch: int, align: bool, n: int, verses: Path) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(WORKER)
    cmd = [
        sys.executable,
        f.name,
        str(root),
        str(beam),
        str(batch),
        "1" if align else "0",
        str(n),
        str(verses),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd="/tmp")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git ref from before the alignment graph")
    p.add_argument("--verses", default=str(ROOT / "benchmarks" / "test-books.es.txt"))
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp()) / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work), args.before],
        check=True,
        capture_output=True,
    )
    try:
        workloads = [("greedy", 1, 1), ("greedy", 1, 16), ("beam 4", 4, 16)]
        engines = [
            ("before", work, False),
            ("after", ROOT, False),
            ("after, return_alignments=True", ROOT, True),
        ]
        times: dict = {}
        texts: dict = {}
        for r in range(args.repeats):
            for name, beam, batch in workloads:
                order = engines[r % len(engines) :] + engines[: r % len(engines)]
                for ename, root, align in order:
                    res = run(root, beam, batch, align, args.sentences, Path(args.verses))
                    times.setdefault((ename, name, batch), []).append(res["seconds"])
                    texts[(ename, name, batch)] = res["texts"]
        lines = [
            f"int8 es-en, {args.sentences} test verses, one process per run, median of {args.repeats} interleaved runs "
            f"(seconds; lower is better). before = {args.before}.",
            "",
            "| workload | before | after | after / before | after, with alignments | same translations before and after |",
            "|---|---|---|---|---|---|",
        ]
        for name, beam, batch in workloads:
            b = statistics.median(times[("before", name, batch)])
            a = statistics.median(times[("after", name, batch)])
            al = statistics.median(times[("after, return_alignments=True", name, batch)])
            same = texts[("before", name, batch)] == texts[("after", name, batch)]
            lines.append(
                f"| {name} b{batch} | {b:.2f} | {a:.2f} | {a / b:.3f} | {al:.2f} ({al / a:.2f}x) | {'yes' if same else 'no'} |"
            )
        report = "\n".join(lines) + "\n"
        print(report)
        if args.out:
            Path(args.out).write_text(report)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work)],
            capture_output=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
