"""Does the int8 variant give the same tokens on another CPU? The browser test's es-en inputs (20
test-book verses and 11 odd inputs), greedy and beam 4, through the Python runtime.

Run as a module from the repository root (it imports the browser test's inputs from tests/):

    .venv/bin/python -m benchmarks.experiments.int8_across_cpus run avx512.json
    qemu-x86_64 -cpu Haswell,-hle,-rtm,-invpcid,-pcid,-x2apic,-tsc-deadline \\
        .venv/bin/python -m benchmarks.experiments.int8_across_cpus run haswell.json
    qemu-x86_64 -cpu Nehalem .venv/bin/python -m benchmarks.experiments.int8_across_cpus \\
        run nehalem.json
    .venv/bin/python -m benchmarks.experiments.int8_across_cpus compare avx512.json haswell.json \\
        nehalem.json

`run` writes the tokens of every input to the JSON file named; `compare` prints a markdown table
counting, per search, the inputs whose tokens equal the first file's. The browser test
(tests/test_web.py) prints the same count for onnxruntime-web's wasm kernels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run(out: str, variant: str = "int8") -> None:
    from tests.test_web import MODEL, N_VERSES, odd_inputs, verses  # needs `-m` from the root
    from traductor.runtime import Translator

    tr = Translator(MODEL, variant=variant, intra_threads=1)
    texts = verses()[:N_VERSES] + odd_inputs(tr)
    result = {"variant": variant, "texts": texts}
    for beam in (1, 4):
        result[f"beam {beam}"] = [
            tr.translate(t, beam_size=beam, return_scores=True).hypotheses[0].tokens for t in texts
        ]
    Path(out).write_text(json.dumps(result, ensure_ascii=False))


def compare(files: list[str]) -> None:
    runs = [json.loads(Path(f).read_text()) for f in files]
    print(
        f"| run | greedy equal to {Path(files[0]).stem} | beam 4 equal to {Path(files[0]).stem} |"
    )
    print("|---|---|---|")
    for f, r in zip(files[1:], runs[1:]):
        cells = []
        for key in ("beam 1", "beam 4"):
            same = sum(a == b for a, b in zip(runs[0][key], r[key]))
            cells.append(f"{same}/{len(r[key])}")
        print(f"| {Path(f).stem} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(sys.argv[2], *(sys.argv[3:4]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "compare":
        compare(sys.argv[2:])
    else:
        sys.exit(__doc__)
