"""Atomic file writes: a killed process leaves either the old file or the new one, never half."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a result file should read like any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def read_yaml(path: str | Path, error: type[Exception]) -> object:
    """A YAML file's data; an unreadable or malformed file raises `error` with one line."""
    import yaml
    try:
        return yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise error(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def named_config(name_or_path: str | Path, folder: Path, what: str, error: type[Exception], hint: str = "") -> Path:
    """A shipped config by name (a file `folder/NAME.yaml`) or any path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = folder / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
            raise error(f"unknown {what} {str(name_or_path)!r}; known: {known} (or give a path to a YAML file{hint})")
    if not path.is_file():
        raise error(f"{path}: no such {what} file")
    return path
