"""Check a built wheel the way a user meets it: installed in a clean venv without torch, run from an
unrelated directory. `make test-wheel` builds the wheel and the venv, then runs this (with the dev
venv's Python, which also translates the same text from the source tree for comparison).

    python tests/wheel_check.py dist/wheel/traductor-*.whl --venv .venv-wheel
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_MB = 30
MODEL = "traductor/models/es-en/"
MUST_HAVE = [
    "config.json",
    "manifest.json",
    "tokenizer.json",
    "MODEL_CARD.md",
    "encoder.int8.onnx",
    "decoder.int8.onnx",
    "align.int8.onnx",
]
MUST_NOT_HAVE = ["encoder.onnx", "decoder.onnx", "align.onnx"]
SENTENCES = [
    "En el principio crió Dios los cielos y la tierra.",
    "Y dijo Dios: Sea la luz: y fué la luz.",
]


def fail(msg: str) -> None:
    print(f"wheel check FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check_contents(wheel: Path) -> None:
    mb = wheel.stat().st_size / 1e6
    if mb > MAX_WHEEL_MB:
        fail(f"{wheel.name} is {mb:.1f} MB, more than {MAX_WHEEL_MB} MB")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in MUST_HAVE if MODEL + f not in names]
    if missing:
        fail(f"{wheel.name} lacks {', '.join(missing)} of the default model")
    extra = [f for f in MUST_NOT_HAVE if MODEL + f in names]
    if extra:
        fail(
            f"{wheel.name} carries the fp32 variant ({', '.join(extra)}); it belongs in the "
            "repository only"
        )
    for pkg in (
        "traductor/runtime/translator.py",
        "traductor/cli.py",
        "traductor/runtime/models.py",
    ):
        if pkg not in names:
            fail(f"{wheel.name} lacks {pkg}")
    print(f"wheel: {wheel.name}, {mb:.1f} MB, default model int8 only")


def run(
    cmd: list[str], cwd: Path, env: dict, expect_ok: bool = True
) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if expect_ok and p.returncode != 0:
        fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    return p


def check_installed(venv: Path) -> None:
    bin_dir = venv.resolve() / "bin"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("TRADUCTOR_MODEL", "PYTHONPATH", "VIRTUAL_ENV")
        }
        env["XDG_DATA_HOME"] = str(tmp / "data")
        _check_runtime_only(bin_dir, tmp, env)
        _check_builtin_model(bin_dir, tmp, env)
        _check_user_models(bin_dir, tmp, env)


def _check_runtime_only(bin_dir: Path, tmp: Path, env: dict) -> None:
    """No torch, and traductor comes from the wheel, not from the source tree."""
    py = str(bin_dir / "python")
    if run([py, "-c", "import torch"], tmp, env, expect_ok=False).returncode == 0:
        fail(f"torch is importable in {bin_dir.parent}: the runtime install must not pull it")
    where = run(
        [py, "-c", "import traductor, sys; print(traductor.__file__)"], tmp, env
    ).stdout.strip()
    if "site-packages" not in where:
        fail(f"the venv imports traductor from the source tree ({where}), not from the wheel")


def _check_builtin_model(bin_dir: Path, tmp: Path, env: dict) -> None:
    """The built-in es-en (int8 only) from the CLI and the Python API, as the source tree's."""
    py = str(bin_dir / "python")
    # The CLI from an unrelated directory, no flag, no environment variable.
    got = run([str(bin_dir / "traductor"), "translate", *SENTENCES], tmp, env).stdout.splitlines()
    sys.path.insert(0, str(ROOT))
    from traductor.runtime import Translator

    want = Translator(ROOT / "models" / "es-en", variant="int8").translate(SENTENCES)
    if got != want:
        fail(f"installed CLI translated {got}, the source tree's int8 variant {want}")
    print(f"translate from {tmp}: {got[0]!r}")

    # The Python API, and what the install says about itself.
    api = run(
        [
            py,
            "-c",
            "from traductor.runtime import Translator; t = Translator(); "
            "import json; print(json.dumps([t.translate('Hola'), t.variant, t.model.available, "
            "str(t.model_dir)]))",
        ],
        tmp,
        env,
    )
    text, variant, available, model_dir = json.loads(api.stdout)
    if variant != "int8" or available != ["int8"] or "site-packages" not in model_dir:
        fail(f"Translator() loaded {variant} from {model_dir} (variants present: {available})")
    listing = run([str(bin_dir / "traductor"), "models"], tmp, env).stdout
    if (
        "es-en" not in listing
        or "site-packages" not in listing
        or "fp32" not in listing
        or "not installed here" not in listing
    ):
        fail(
            f"`traductor models` does not show the built-in model and its missing fp32:\n{listing}"
        )
    asked = run(
        [str(bin_dir / "traductor"), "translate", "--variant", "fp32", "Hola"],
        tmp,
        env,
        expect_ok=False,
    )
    if asked.returncode != 2 or "only the int8" not in asked.stderr:
        fail(
            f"--variant fp32 on the wheel's model should fail clearly, got {asked.returncode}: "
            f"{asked.stderr}"
        )


def _check_user_models(bin_dir: Path, tmp: Path, env: dict) -> None:
    """User models: add the tiny test package, use it by name, remove it."""
    tiny = ROOT / "tests" / "assets" / "tiny-model"
    run([str(bin_dir / "traductor"), "models", "add", str(tiny), "--name", "tiny"], tmp, env)
    if not (tmp / "data" / "traductor" / "models" / "tiny" / "config.json").is_file():
        fail("`traductor models add` did not copy into $XDG_DATA_HOME/traductor/models")
    out = run(
        [str(bin_dir / "traductor"), "translate", "--model", "tiny", "hola mundo"], tmp, env
    ).stdout.strip()
    if not out:
        fail("the added model translated to nothing")
    run([str(bin_dir / "traductor"), "models", "remove", "tiny"], tmp, env)
    print(f"models add/translate/remove by name: ok ({out!r})")
    # --model and TRADUCTOR_MODEL still override the built-in model.
    over = run(
        [str(bin_dir / "traductor"), "translate", "hola mundo"],
        tmp,
        {**env, "TRADUCTOR_MODEL": str(tiny)},
    ).stdout.strip()
    if over != out:
        fail(f"TRADUCTOR_MODEL={tiny} gave {over!r}, --model gave {out!r}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wheel", type=Path)
    p.add_argument(
        "--venv", type=Path, help="a venv with the wheel installed (and nothing else of ours)"
    )
    args = p.parse_args()
    check_contents(args.wheel)
    if args.venv:
        check_installed(args.venv)
    print("wheel check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
