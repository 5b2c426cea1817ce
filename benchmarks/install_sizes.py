"""Installed size on disk of several translation runtimes, each in a fresh venv.

For every stack the script creates a new virtual environment (``python -m venv``
with the interpreter running this script), ``pip install``s the stack into it and
measures the venv's ``site-packages``: the sum of the file sizes found by
``os.walk`` (symlinks not followed), minus the same figure for a bare venv (the
pip/setuptools baseline). It also counts the distributions that the install
added (``pip list --format=json``, minus the bare venv's) and records the
versions of the main packages. Sizes are in MB = 10^6 bytes.

Stacks (``--only`` takes these names, comma-separated):

    traductor      this repo's runtime: pip install <repo root> (or --traductor PATH,
                   a source tree or a wheel); onnxruntime + numpy + tokenizers
    ctranslate2    ctranslate2 + sentencepiece
    argostranslate argostranslate and its dependencies, torch CPU build pre-installed
    transformers   transformers + torch (CPU build) + sentencepiece
    optimum        optimum-onnx[onnxruntime] (falls back to optimum[onnxruntime]);
                   torch CPU build pre-installed if the resolution pulls torch

torch is always pinned to 2.13.0: on this project's machines pip finds the CPU
build of that release on local disk, whereas an unpinned torch is a multi-GB CUDA
build. Every install also gets a constraints file with ``torch==2.13.0`` so that
a transitive torch can never resolve to another build.

Usage (from the repo root; takes 10-20 minutes for all stacks, mostly downloads):

    python3 benchmarks/install_sizes.py --out benchmarks/results/install_sizes.md
    python3 benchmarks/install_sizes.py --only traductor,ctranslate2
    python3 benchmarks/install_sizes.py --only traductor \\
        --traductor dist/traductor-0.1.0-py3-none-any.whl

The table goes to stdout (and to ``--out FILE``); progress goes to stderr. The
venvs live in a temporary folder (or ``--work DIR``) and are deleted after each
stack is measured unless ``--keep`` is given. A stack that fails to install gets
its error in its table row instead of stopping the run.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0"
MB = 1e6

# Top-level entries of a source tree that never belong in a build: copying the
# tree without them keeps pip's in-tree build from writing into the repo.
SOURCE_IGNORE_TOP = {".git", "build", "dist", ".pytest_cache", ".whl", ".gpu"}


@dataclasses.dataclass
class Stack:
    name: str  # what --only takes
    label: str  # first column of the table; "{reqs}" stands for the requirements used
    alternatives: list[list[str]]  # pip requirement lists, tried in order
    main: list[str]  # distributions whose versions the table shows
    torch: bool | None = False  # pre-install TORCH_PIN: yes, no, or None = if resolved
    shown: str = ""  # shown in the table instead of the requirements, if set


@dataclasses.dataclass
class Result:
    stack: Stack
    label: str = ""  # the stack's label, filled in
    installed: str = ""  # the requirement list that was used
    size: int = 0  # bytes added to site-packages
    models: int | None = None  # bytes under site-packages/traductor/models
    package: int | None = None  # bytes under site-packages/traductor
    dists: int = 0  # distributions added
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    largest: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def stacks(traductor_req: str, traductor_shown: str) -> list[Stack]:
    return [
        Stack(
            "traductor",
            "traductor (this repo)",
            [[traductor_req]],
            ["traductor", "onnxruntime", "numpy", "tokenizers"],
            shown=traductor_shown,
        ),
        Stack(
            "ctranslate2",
            "ctranslate2 + sentencepiece",
            [["ctranslate2", "sentencepiece"]],
            ["ctranslate2", "sentencepiece", "numpy"],
        ),
        Stack(
            "argostranslate",
            "argostranslate (torch CPU)",
            [["argostranslate"]],
            ["argostranslate", "ctranslate2", "stanza", "spacy", "torch"],
            torch=True,
        ),
        Stack(
            "transformers",
            "transformers + torch CPU + sentencepiece",
            [["transformers", "sentencepiece"]],
            ["transformers", "torch", "sentencepiece", "tokenizers"],
            torch=True,
        ),
        # Plain optimum-onnx does not install onnxruntime: that is its [onnxruntime] extra.
        Stack(
            "optimum",
            "{reqs}",
            [["optimum-onnx[onnxruntime]"], ["optimum[onnxruntime]"]],
            ["optimum-onnx", "optimum", "onnxruntime", "transformers", "torch"],
            torch=None,
        ),
    ]


# --- measuring -------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    """Sum of the sizes of the files under path, symlinks not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def top_level_bytes(site: Path) -> dict[str, int]:
    """Size of each top-level entry of site-packages."""
    sizes = {}
    for entry in site.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            sizes[entry.name] = tree_bytes(entry)
        else:
            sizes[entry.name] = entry.lstat().st_size
    return sizes


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Venv:
    def __init__(self, path: Path, python: str):
        self.path = path
        if path.exists():
            shutil.rmtree(path)
        run([python, "-m", "venv", str(path)], timeout=600)
        self.python = str(path / "bin" / "python")
        self.site = Path(self.eval("import sysconfig; print(sysconfig.get_paths()['purelib'])"))

    def eval(self, code: str) -> str:
        return run([self.python, "-c", code], timeout=120).stdout.strip()

    def pip(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return run([self.python, "-m", "pip", *args], timeout=timeout)

    def dists(self) -> dict[str, str]:
        out = self.pip("list", "--format=json", timeout=300).stdout
        return {canon(d["name"]): d["version"] for d in json.loads(out)}

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class CommandError(Exception):
    pass


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CommandError(f"timed out after {timeout:.0f} s: {' '.join(cmd[2:])}") from None
    if proc.returncode != 0:
        raise CommandError(pip_error(proc.stderr or proc.stdout) or f"exit code {proc.returncode}")
    return proc


def pip_error(text: str) -> str:
    """The telling lines of pip's stderr, on one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    if lines and lines[-1] not in errors:  # a traceback's last line says what broke
        errors.append(lines[-1])
    return " ".join(errors)


# --- installing --------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.constraints = work / "constraints.txt"
        self.constraints.write_text(TORCH_PIN + "\n")
        log(f"work folder: {work}")
        log("bare venv (baseline) ...")
        bare = Venv(work / "bare", sys.executable)
        try:
            self.base_entries = top_level_bytes(bare.site)
            self.base_size = sum(self.base_entries.values())
            self.base_dists = bare.dists()
            self.python_version = bare.eval("import sys; print(sys.version.split()[0])")
        finally:
            if not args.keep:
                bare.remove()
        log(
            f"  baseline: {self.base_size / MB:.1f} MB, {len(self.base_dists)} distributions "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.base_dists.items()))})"
        )

    def pip_install(self, venv: Venv, reqs: list[str], *extra: str) -> subprocess.CompletedProcess:
        return venv.pip(
            "install",
            "-q",
            "--timeout",
            str(self.args.pip_timeout),
            "-c",
            str(self.constraints),
            *extra,
            *reqs,
            timeout=self.args.install_timeout,
        )

    def resolves_torch(self, venv: Venv, reqs: list[str]) -> bool:
        """Whether installing reqs would bring in torch (pip --dry-run --report)."""
        report = self.work / "report.json"
        try:
            self.pip_install(venv, reqs, "--dry-run", "--report", str(report))
            names = {
                canon(item["metadata"]["name"])
                for item in json.loads(report.read_text())["install"]
            }
        except (CommandError, OSError, ValueError, KeyError) as exc:
            log(f"  dry run failed ({exc}); the install will tell")
            return False
        finally:
            report.unlink(missing_ok=True)
        return "torch" in names

    def measure(self, stack: Stack) -> Result:
        result = Result(
            stack,
            label=stack.label.format(
                reqs=" / ".join(" ".join(reqs) for reqs in stack.alternatives)
            ),
        )
        start = time.monotonic()
        venv = None
        try:
            for i, reqs in enumerate(stack.alternatives):
                log(f"[{stack.name}] venv + pip install {' '.join(reqs)} ...")
                venv = Venv(self.work / stack.name, sys.executable)
                try:
                    torch = stack.torch
                    if torch is None:
                        torch = self.resolves_torch(venv, reqs)
                        log(f"  resolution pulls torch: {torch}")
                    if torch:
                        log(f"  pre-installing {TORCH_PIN} (CPU build) ...")
                        self.pip_install(venv, [TORCH_PIN])
                    self.pip_install(venv, reqs)
                except CommandError as exc:
                    log(f"  failed: {exc}")
                    result.error = str(exc)
                    if not self.args.keep:
                        venv.remove()
                    venv = None
                    if i + 1 < len(stack.alternatives):
                        result.notes.append(f"`{' '.join(reqs)}` failed: {exc}")
                    continue
                result.error = ""
                result.installed = " ".join(
                    ([TORCH_PIN] if torch else []) + ([stack.shown] if stack.shown else reqs)
                )
                result.label = stack.label.format(reqs=" ".join(reqs))
                if stack.torch is None and torch:
                    result.label += " (torch CPU)"
                if i > 0:
                    result.notes.append(f"used the fallback `{' '.join(reqs)}`")
                break
            if venv is not None:
                self.fill(result, venv)
        except CommandError as exc:  # venv creation or pip list failed
            result.error = str(exc)
        finally:
            if venv is not None and not self.args.keep:
                venv.remove()
        result.seconds = time.monotonic() - start
        log(
            f"  done in {result.seconds:.0f} s: "
            + (
                f"error: {result.error}"
                if result.error
                else f"{result.size / MB:.1f} MB, {result.dists} distributions"
            )
        )
        return result

    def fill(self, result: Result, venv: Venv) -> None:
        entries = top_level_bytes(venv.site)
        result.size = sum(entries.values()) - self.base_size
        dists = venv.dists()
        result.dists = len(dists) - len(self.base_dists)
        result.versions = {
            name: dists[name] for name in map(canon, result.stack.main) if name in dists
        }
        new = {k: v - self.base_entries.get(k, 0) for k, v in entries.items()}
        result.largest = sorted(
            ((k, v) for k, v in new.items() if v >= 0.05 * MB), key=lambda kv: -kv[1]
        )[:5]
        pkg = venv.site / "traductor"
        if result.stack.name == "traductor" and pkg.is_dir():
            result.package = tree_bytes(pkg)
            result.models = tree_bytes(pkg / "models") if (pkg / "models").is_dir() else 0
        torch = dists.get("torch")
        if torch and not torch.endswith("+cpu"):
            result.notes.append(f"torch {torch} is not the CPU build")
        cuda = sorted(d for d in dists if d.startswith("nvidia-"))
        if cuda:
            result.notes.append(f"pulled {len(cuda)} nvidia-* CUDA packages")


def traductor_requirement(path: Path, work: Path) -> str:
    """A wheel is installed as is; a source tree is copied first, so that pip's
    in-tree build (build/, *.egg-info) never writes into it."""
    path = path.resolve()
    if path.is_file():
        return str(path)
    if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
        raise SystemExit(f"--traductor {path}: neither a wheel nor a Python project")
    dest = work / "traductor-src"

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if Path(folder) == path:
            skip |= {n for n in names if n in SOURCE_IGNORE_TOP or n.startswith(".venv")}
        return skip

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(path, dest, ignore=ignore, symlinks=True)
    return str(dest)


# --- reporting -------------------------------------------------------------


def cell(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mb(n: int) -> str:
    return f"{n / MB:,.1f}"


def source_line(path: Path) -> str:
    """Where the traductor install came from, with the git commit when there is one."""
    path = path.resolve()
    if path.is_file():
        return f"- traductor: wheel {path.name}"
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"- traductor: source tree {path}"
    return f"- traductor: source tree {path} at commit {commit}" + (
        " plus uncommitted changes" if dirty else ""
    )


def table(results: list[Result], bench: Bench) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- date: {now}",
        f"- Python: {bench.python_version} (`python3 -m venv`), "
        f"pip {bench.base_dists.get('pip', '?')}",
        f"- platform: {platform.platform()} ({platform.machine()})",
        f"- bare venv baseline: {mb(bench.base_size)} MB in site-packages, "
        f"{len(bench.base_dists)} distributions, subtracted from every row",
        *(
            [source_line(bench.args.traductor)]
            if any(r.stack.name == "traductor" for r in results)
            else []
        ),
        "",
        "| Stack | pip install | Size (MB) | of which models (MB) | Distributions | "
        "Main versions | Notes |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        s = r.stack
        if r.error:
            tried = s.shown or " / ".join(" ".join(reqs) for reqs in s.alternatives)
            lines.append(
                f"| {r.label} | `{cell(tried)}` | – | – | – | – | "
                f"install failed: {cell('; '.join(r.notes + [r.error]))} |"
            )
            continue
        notes = list(r.notes)
        if r.package is not None:
            notes.insert(0, f"site-packages/traductor: {mb(r.package)} MB")
        versions = ", ".join(f"{k} {v}" for k, v in r.versions.items())
        models = mb(r.models) if r.models is not None else ("0" if s.name == "traductor" else "–")
        lines.append(
            f"| {r.label} | `{cell(r.installed)}` | {mb(r.size)} | {models} | {r.dists} "
            f"| {cell(versions)} | {cell('; '.join(notes))} |"
        )
    lines += ["", "Largest additions to site-packages (top-level entries, MB):", ""]
    for r in results:
        if not r.error:
            items = ", ".join(f"{k} {mb(v)}" for k, v in r.largest)
            lines.append(f"- {r.label}: {items}")
    return "\n".join(lines) + "\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        help="comma-separated stack names "
        "(traductor, ctranslate2, argostranslate, transformers, optimum)",
    )
    parser.add_argument(
        "--traductor",
        type=Path,
        default=REPO_ROOT,
        help="traductor source tree or wheel to install (default: the repo root)",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown table to this file")
    parser.add_argument(
        "--work", type=Path, help="folder for the venvs (default: a new temporary folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the venvs after measuring")
    parser.add_argument(
        "--pip-timeout",
        type=int,
        default=60,
        help="pip's --timeout for network reads, seconds (default 60)",
    )
    parser.add_argument(
        "--install-timeout",
        type=int,
        default=3600,
        help="limit for one pip install command, seconds (default 3600)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if sys.version_info[:2] != (3, 11):
        log(f"warning: the venvs use Python {platform.python_version()}, not 3.11")
    names = [s.name for s in stacks("", "")]
    wanted = names if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(wanted) - set(names)
    if unknown:
        parser.error(
            f"unknown stack(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )

    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="install_sizes-", dir=args.work))
    else:
        work = Path(tempfile.mkdtemp(prefix="install_sizes-"))
    try:
        trad = traductor_requirement(args.traductor, work) if "traductor" in wanted else ""
        bench = Bench(args, work)
        results = [
            bench.measure(s)
            for s in stacks(trad, str(args.traductor.resolve()))
            if s.name in wanted
        ]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    text = table(results, bench)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
