"""`--engine ray`: the parts on a Ray Data actor pool, on this machine or a cluster.

The dataset is the list of parts still to do, one block each; `map_batches` sends each part to an
actor of the pool, which loads the model package once and runs the same `translate_part` as the
local engine, writing the part itself (so the input and OUT must be paths every node can read
and write: a shared file system). Ray restarts a killed actor and retries its part: a part is
written whole under its own name, so a retry writes the same bytes again and nothing doubles.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray

from ..package import TraductorError
from .core import ModelSpec, translate_part
from .options import DatasetError, DatasetOptions
from .parts import Part
from .progress import progress_bar


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray for the job; "auto" or "ray://host:port"
    cpus_per_actor: int = 1  # each actor's CPUs = its ONNX Runtime intra-op threads
    min_actors: int | None = None  # None: max_actors (a fixed pool, every CPU busy from the start)
    max_actors: int | None = None  # None: as many as the cluster's CPUs allow
    local_cpus: int | None = None  # the CPUs of a local Ray (None: all)
    ship_model: bool = False  # upload the model package with the job (runtime_env working_dir)


class TranslatorActor:
    """One per pool slot: loads the package once, then translates and writes its parts."""

    def __init__(self, opts: DatasetOptions, model: ModelSpec, out: str, threads: int):
        self.opts, self.out = opts, Path(out)
        self.translator = model.load(threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        stats = [
            translate_part(self.translator, Part.from_json(p), self.opts, self.out)
            for p in batch["part"]
        ]
        return {
            "rows": np.array([s.rows for s in stats], dtype=np.int64),
            "errors": np.array([s.errors for s in stats], dtype=np.int64),
            "pid": np.array([os.getpid()] * len(stats), dtype=np.int64),
            "node": np.array([ray.get_runtime_context().get_node_id()] * len(stats)),
        }


def run_ray(
    parts: list[Part],
    opts: DatasetOptions,
    model: ModelSpec,
    out: Path,
    ro: RayOptions,
    progress: bool,
) -> dict:
    """Translate `parts` on Ray; returns {"nodes": node ids that did work, "actors": their pids,
    "start_s": seconds to start or join Ray}."""
    t0 = time.perf_counter()
    started = _init(ro, model)
    start_s = time.perf_counter() - t0
    try:
        return {**_run(parts, opts, model, out, ro, progress), "start_s": start_s}
    finally:
        if started:
            ray.shutdown()


def _init(ro: RayOptions, model: ModelSpec) -> bool:
    if ray.is_initialized():
        return False  # a caller's Ray (tests, notebooks): use it as it is
    runtime_env = {"working_dir": model.path} if ro.ship_model else None
    kwargs = dict(logging_level=logging.ERROR, runtime_env=runtime_env, include_dashboard=False)
    if ro.address is None:
        # A Ray started for this job listens on loopback only (Ray picks the interface otherwise).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # address="local": a new Ray, never one a stale /tmp/ray/ray_current_cluster points at.
        ray.init(address="local", num_cpus=ro.local_cpus, **kwargs)
    else:
        kwargs.pop("include_dashboard")
        try:
            ray.init(address=ro.address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise DatasetError(f"cannot join the Ray cluster at {ro.address}: {e}") from e
    return True


def _run(parts, opts, model, out, ro, progress) -> dict:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours counts rows, Ray's would count parts
    ctx.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    max_actors = ro.max_actors or max(1, cpus // ro.cpus_per_actor)
    min_actors = min(ro.min_actors or max_actors, max_actors)
    if ro.ship_model:
        model = ModelSpec(".", model.variant, model.providers, model.fallback)  # the working_dir
    ds = ray.data.from_items([{"part": p.to_json()} for p in parts], override_num_blocks=len(parts))
    ds = ds.map_batches(
        TranslatorActor,
        compute=ray.data.ActorPoolStrategy(min_size=min_actors, max_size=max_actors),
        batch_size=1,  # one part per call: the unit of retry
        num_cpus=ro.cpus_per_actor,
        fn_constructor_kwargs=dict(opts=opts, model=model, out=str(out), threads=ro.cpus_per_actor),
    )
    bar = progress_bar(sum(p.rows for p in parts), progress)
    nodes, pids = set(), set()
    try:
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy"):
            bar.update(int(batch["rows"].sum()))
            nodes.update(str(n) for n in batch["node"])
            pids.update(int(p) for p in batch["pid"])
    except Exception as e:
        cause = _user_cause(e)
        if cause is not None:
            raise cause from None
        raise
    finally:
        bar.close()
    return {"nodes": sorted(nodes), "actors": sorted(pids)}


def _user_cause(e: BaseException) -> TraductorError | None:
    """A user's mistake raised inside an actor (an unreadable part, a model that does not load),
    unwrapped from Ray's task error so the CLI prints its one line."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "cause", None)  # RayTaskError: also an instance of the cause's class
        if inner is not None and inner is not e:
            e = inner
            continue
        if isinstance(e, TraductorError):
            return e
        e = e.__cause__
    return None
