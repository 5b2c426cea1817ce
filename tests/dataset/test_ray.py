"""`--engine ray` on a real local Ray (2 CPUs, loopback): output equal to the local engine and to
one translate_batch, a killed actor restarted with nothing lost or doubled, a killed driver whose
rerun completes the same output."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import TINY, expected, read_output, run, translations, write_dataset

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    # A local Ray listens on 127.0.0.1 with this set (../shared/REFERENCE.md); the CLI sets it too.
    old = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def _actor_pids() -> set[int]:
    """Processes Ray titled after our actor class."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"TranslatorActor" in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


def test_ray_output_equals_local_and_one_translate_batch(tmp_path, tiny, local_ray, capsys):
    texts = write_dataset(tmp_path / "in", n=150)
    args = ("--part-rows", "20", "--beam", "2")
    assert run(tmp_path / "in", "--output", tmp_path / "local", *args) == 0
    assert run(tmp_path / "in", "--output", tmp_path / "ray", *args, "--engine", "ray") == 0
    assert "2 actor(s) on 1 node(s)" in capsys.readouterr().err
    rows = read_output(tmp_path / "ray")
    assert rows == read_output(tmp_path / "local")
    assert translations(rows) == expected(tiny, texts, beam_size=2)
    assert [r["text"] for r in rows] == texts


def test_killed_actor_is_restarted_and_output_still_equal(tmp_path, tiny, local_ray):
    texts = write_dataset(tmp_path / "in", n=1500)
    out = tmp_path / "out"
    before = _actor_pids()
    rc = []
    job = threading.Thread(
        target=lambda: rc.append(
            run(
                tmp_path / "in",
                "--output",
                out,
                "--part-rows",
                "50",
                "--beam",
                "1",
                "--engine",
                "ray",
            )
        )
    )
    job.start()
    deadline = time.time() + 90
    while len(list(out.glob("*.parquet"))) < 2 and time.time() < deadline:
        time.sleep(0.02)
    victims = _actor_pids() - before
    assert victims, "no actor process found"
    victim = min(victims)
    os.kill(victim, signal.SIGKILL)
    parts_at_kill = len(list(out.glob("*.parquet")))
    job.join(timeout=180)
    assert rc == [0]
    assert parts_at_kill < 30, "the job ended before the actor was killed"
    assert victim not in _actor_pids()
    rows = read_output(out)
    assert [r["row_id"] for r in rows] == list(range(1500))  # none lost, none twice
    assert translations(rows) == expected(tiny, texts, beam_size=1)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_killed_ray_driver_then_rerun_gives_the_uninterrupted_output(tmp_path, local_ray):
    write_dataset(tmp_path / "in", n=1500)
    args = [str(tmp_path / "in"), "--model", TINY, "--part-rows", "50", "--beam", "1"]
    assert run(*args[:1], "--output", tmp_path / "ref", *args[1:]) == 0
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "traductor", "translate-dataset", *args, "--output", str(out)]
    driver = subprocess.Popen(
        [*cli, "--engine", "ray", "--ray-cpus", "2"], stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 90
    while len(list(out.glob("*.parquet"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    ray_processes = _descendants(driver.pid)  # the Ray it started for the job
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    time.sleep(1)
    for pid in ray_processes:  # Ray's agents outlive a SIGKILLed driver: end them
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    written = len(list(out.glob("*.parquet")))
    assert 3 <= written < 30, "the driver was not killed mid-job"
    # The rerun (here on the test's Ray) skips the parts already written and does the rest.
    assert run(*args[:1], "--output", out, *args[1:], "--engine", "ray") == 0
    assert read_output(out) == read_output(tmp_path / "ref")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "ref").iterdir()
    )
