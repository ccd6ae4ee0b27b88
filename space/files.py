"""Files and mappings, written once: atomic writes (a killed process leaves either the old file or
the new one, never half), YAML/JSON reading with one-line errors, and the unknown-key check every
loader of user data uses."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from space.errors import UserError


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


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_path(path: str | Path):
    """A context manager giving a temporary path beside `path` that a writer library fills (e.g.
    safetensors' save_file); on success it replaces `path` atomically, on failure it is removed."""
    from contextlib import contextmanager

    @contextmanager
    def scope():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return scope()


def read_yaml(path: str | Path, error: type[Exception]) -> object:
    """A YAML file's data; an unreadable or malformed file raises `error` with one line."""
    import yaml
    try:
        return yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise error(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def read_json(path: str | Path, error: type[Exception] = UserError) -> Any:
    """A JSON file's data; a missing, unreadable or malformed file raises `error` with one line."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise error(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None


def check_keys(d: Any, where: str, allowed: Iterable[str], required: Iterable[str] = (),
               error: type[Exception] = UserError, what: str = "a mapping") -> dict:
    """`d` as a dict whose keys are all allowed and include the required ones; else `error` with one
    line naming the place and the key (the one unknown-key check of every loader)."""
    if not isinstance(d, dict):
        raise error(f"{where}: expected {what}, got {type(d).__name__}")
    allowed = tuple(allowed)
    for key in d:
        if key not in allowed:
            raise error(f"{where}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
    for key in required:
        if key not in d:
            raise error(f"{where}: missing key {key!r}")
    return d


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
