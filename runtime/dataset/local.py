"""`--engine local`: the parts on this machine, no Ray.

With --workers 1, the parts one after another in this process on one Translator (its automatic
threads put large batches on all cores). With more, a pool of worker processes, each with its own
Translator on cores / workers intra-op threads: on 2 cores, two one-thread processes translated
1.42x the rows/s of one two-thread process (docs/datasets.md#speed), since a decoder step over a
few dozen rows gains little from a second thread.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from .core import ModelSpec, translate_part
from .options import DatasetOptions
from .parts import Part
from .progress import progress_bar

_WORKER: dict = {}  # in each worker process: its Translator, options and output directory


def run_local(
    translator,
    parts: list[Part],
    opts: DatasetOptions,
    out: Path,
    progress: bool,
    workers: int = 1,
    model: ModelSpec | None = None,
    threads: int | None = None,
) -> None:
    bar = progress_bar(sum(p.rows for p in parts), progress)
    try:
        if workers <= 1 or len(parts) <= 1:
            for part in parts:
                bar.update(translate_part(translator, part, opts, out).rows)
        else:
            _pool(parts, opts, out, bar, workers, model, threads)
    finally:
        bar.close()


def _pool(parts, opts, out, bar, workers, model, threads) -> None:
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    # spawn: the parent's ONNX Runtime thread pools must not be forked.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(workers, len(parts)), ctx, initializer=_start, initargs=(model, threads, opts, str(out))
    ) as pool:
        pending = {pool.submit(_translate, part) for part in parts}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    bar.update(f.result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _start(model: ModelSpec, threads: int, opts: DatasetOptions, out: str) -> None:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    _WORKER.update(translator=model.load(threads), opts=opts, out=Path(out))


def _exit_with_parent(parent: int) -> None:
    """A driver killed with SIGKILL cannot stop its workers: they stop themselves."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _translate(part: Part) -> int:
    return translate_part(_WORKER["translator"], part, _WORKER["opts"], _WORKER["out"]).rows
