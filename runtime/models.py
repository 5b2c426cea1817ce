"""Where model packages live, and how a name becomes a directory.

Three places, looked up in this order:

1. a path: any argument that names an existing directory (or looks like a path) is used as it is;
2. user models: packages copied by `traductor models add DIR` into the user's data directory,
   `$XDG_DATA_HOME/traductor/models/NAME` (default `~/.local/share/traductor/models`; on macOS
   `~/Library/Application Support/traductor/models`, on Windows
   `%LOCALAPPDATA%\\traductor\\models`);
3. built-in models: the packages inside the installed `traductor.models` package. The wheel holds
   the default es->en model's int8 variant; a source checkout holds every variant that was built.

With no model given, `$TRADUCTOR_MODEL` (a name or a path) wins, then the built-in `es-en`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .package import (
    CONFIG_FILE,
    MANIFEST_FILE,
    ModelError,
    installed_variants,
    read_config,
    verify_files,
)

DEFAULT_MODEL = "es-en"
DEFAULT_MODEL_ENV = "TRADUCTOR_MODEL"
DATA_DIR_ENV = "XDG_DATA_HOME"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def builtin_root() -> Path:
    """The built-in packages' folder: `traductor/models` in the install (models/ in a checkout)."""
    from importlib.resources import files

    return Path(str(files("traductor.models")))


def user_root() -> Path:
    """Where `traductor models add` copies packages to (the platform's user data directory)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".local" / "share")
    return base / "traductor" / "models"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    origin: str  # "user" or "built-in"


def _packages(root: Path, origin: str) -> list[ModelEntry]:
    if not root.is_dir():
        return []
    return [
        ModelEntry(p.name, p, origin)
        for p in sorted(root.iterdir())
        if (p / CONFIG_FILE).is_file() and not p.name.startswith(".")
    ]


def list_models() -> list[ModelEntry]:
    """Every named model: user models first (a user model shadows a built-in one of its name)."""
    return _packages(user_root(), "user") + _packages(builtin_root(), "built-in")


def looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "~")) or "/" in spec or (os.sep != "/" and os.sep in spec)


def resolve_model(spec: str | os.PathLike | None = None) -> Path:
    """A model argument (path, name or None) -> the package directory. Raises ModelError with what
    exists when nothing matches."""
    if spec is None:
        spec = os.environ.get(DEFAULT_MODEL_ENV) or DEFAULT_MODEL
    if isinstance(spec, os.PathLike):
        return Path(spec)
    if not isinstance(spec, str) or not spec:
        raise ModelError(f"a model is a directory or a model name, got {spec!r}")
    path = Path(spec).expanduser()
    if path.is_dir() or looks_like_path(spec):
        return path
    for entry in list_models():
        if entry.name == spec:
            return entry.path
    known = ", ".join(f"{e.name} ({e.origin})" for e in list_models()) or "none"
    raise ModelError(
        f"no model named {spec!r} and no directory of that name; installed models: {known} "
        "(`traductor models` lists them, `traductor models add DIR` installs one)"
    )


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' (at most 100, not "
            "starting with '.' or '-')"
        )
    return name


def verify_package(model_dir: Path) -> list[str]:
    """Check a package before installing it: a readable config, and every file of its manifest with
    its size and sha256, except the graphs of absent variants. -> the files to copy."""
    cfg = read_config(model_dir)
    available = installed_variants(model_dir, cfg)
    if not available:
        raise ModelError(f"{model_dir} holds none of its variants' graph files")
    absent = {f for name, v in cfg.variants.items() if name not in available for f in v.files}
    try:
        listed = json.loads((model_dir / MANIFEST_FILE).read_text())["files"]
    except FileNotFoundError:
        raise ModelError(f"{model_dir} has no {MANIFEST_FILE}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{model_dir / MANIFEST_FILE} is malformed: {e}") from e
    bad = [f for f in listed if not isinstance(f, str) or Path(f).name != f or f in (".", "..")]
    if bad:
        raise ModelError(
            f"{model_dir / MANIFEST_FILE} lists {bad[0]!r}: a package's files are plain file names"
        )
    present = [f for f in listed if f not in absent]
    verify_files(model_dir, present)
    return [MANIFEST_FILE, *present]


def add_model(src: str | os.PathLike, name: str | None = None, force: bool = False) -> ModelEntry:
    """Verify the package at src and copy it into user_root()/name (name: src's folder name)."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise ModelError(f"model directory not found: {src}")
    name = check_name(src.resolve().name if name is None else name)
    files = verify_package(src)
    root = user_root()
    dest = root / name
    if dest.exists() and not force:
        raise ModelError(
            f"a user model named {name!r} already exists at {dest}; pass --force to replace it, or "
            "--name to pick another"
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for f in files:  # the manifest's files only: nothing else in src is part of the package
            shutil.copy2(src / f, tmp / f)
        verify_package(tmp)  # the copy, not just the source, must be intact
        if dest.exists():
            old = root / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelEntry(name, dest, "user")


def remove_model(name: str) -> Path:
    """Delete the user model `name`. Built-in models are part of the install and are not removed."""
    check_name(name)
    dest = user_root() / name
    if not (dest / CONFIG_FILE).is_file():
        builtin = [e for e in _packages(builtin_root(), "built-in") if e.name == name]
        if builtin:
            raise ModelError(
                f"{name} is built in ({builtin[0].path}); only user models can be removed"
            )
        have = ", ".join(e.name for e in _packages(user_root(), "user")) or "none"
        raise ModelError(f"no user model named {name!r} in {user_root()}; user models: {have}")
    shutil.rmtree(dest)
    return dest


__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_ENV",
    "ModelEntry",
    "add_model",
    "builtin_root",
    "list_models",
    "remove_model",
    "resolve_model",
    "user_root",
    "verify_package",
]
