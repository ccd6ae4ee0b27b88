"""Typed, versioned records: what runs write and later runs read (a supernet's metadata, a search
run, an exported model's card). A record is a frozen dataclass with one codec: `to_dict` /
`from_dict` (JSON-plain values), `write` / `read` (an atomic JSON file). Reading refuses, with one
line naming the file, another format, a newer version, a missing key or an unknown key.

A subclass sets FORMAT and VERSION and may override `_decode` to turn plain fields into typed ones
(and `_upgrade` to read an older version)."""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from space.files import atomic_write_json, check_keys, read_json
from space.errors import UserError

R = TypeVar("R", bound="Record")


class RecordError(UserError):
    """A record file that this hwnas cannot read: the message names the file and what is wrong."""


def plain(value: Any) -> Any:
    """JSON-plain form of a field value: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Record:
    FORMAT: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "record"  # how messages call it ("search run record")
    HINT: ClassVar[str] = ""  # how to make a good one, for messages

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": self.FORMAT, "version": self.VERSION}
        d.update({f.name: plain(getattr(self, f.name)) for f in fields(self)})
        return d

    @classmethod
    def from_dict(cls: type[R], d: Any, where: str = "") -> R:
        where = where or cls.WHAT
        hint = f"; {cls.HINT}" if cls.HINT else ""
        if not isinstance(d, dict):
            raise RecordError(f"{where}: not a hwnas {cls.WHAT} (expected a JSON object){hint}")
        if d.get("format") != cls.FORMAT:
            raise RecordError(f"{where}: not a hwnas {cls.WHAT} (format {d.get('format')!r}, expected {cls.FORMAT!r}){hint}")
        version = d.get("version")
        if not isinstance(version, int) or version < 1:
            raise RecordError(f"{where}: {cls.WHAT} without a valid version ({version!r}){hint}")
        if version > cls.VERSION:
            raise RecordError(f"{where}: {cls.WHAT} version {version} was written by a newer hwnas (this one reads "
                              f"up to version {cls.VERSION}); upgrade hwnas: pip install -U hwnas")
        body = {k: v for k, v in d.items() if k not in ("format", "version")}
        if version < cls.VERSION:
            body = cls._upgrade(body, version, where)
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        check_keys(body, where, names, required, error=RecordError)
        try:
            return cls(**cls._decode(body, where))
        except RecordError:
            raise
        except UserError as e:
            raise RecordError(f"{where}: {e}") from None
        except (TypeError, ValueError, KeyError) as e:
            raise RecordError(f"{where}: a field of this {cls.WHAT} has the wrong type ({e}){hint}") from None

    @classmethod
    def _decode(cls, body: dict[str, Any], where: str) -> dict[str, Any]:
        """Plain fields -> typed constructor arguments (default: as they are)."""
        return body

    @classmethod
    def _upgrade(cls, body: dict[str, Any], version: int, where: str) -> dict[str, Any]:
        """An older version's fields -> this version's (default: refuse)."""
        raise RecordError(f"{where}: {cls.WHAT} version {version} is older than this hwnas reads "
                          f"(version {cls.VERSION}){'; ' + cls.HINT if cls.HINT else ''}")

    def write(self, path: str | Path) -> Path:
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        return cls.from_dict(read_json(path, RecordError), str(path))

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)
