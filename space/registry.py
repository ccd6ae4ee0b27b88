"""One registry shape for everything users pick by name (attention types, search strategies,
latency predictors), as timm's `create_model`: register a class under its `name`, `create(name,
**kw)` builds one, `names()` lists the choices (the CLI's options and help texts read it)."""
from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from space.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, check: Callable[[str], None] | None = None) -> None:
        """`what` names the kind in messages ("search strategy"); `check(name)` may refuse a name
        at registration (e.g. an attention type the space does not declare)."""
        self.what = what
        self._check = check
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: registers `cls` under `cls.name`; the order of registration is the
        order `names()` gives."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} needs a class attribute `name` to be registered as a {self.what}")
        if name in self._classes and self._classes[name] is not cls:
            raise KeyError(f"{self.what} {name!r} is registered twice ({self._classes[name].__name__}, {cls.__name__})")
        if self._check is not None:
            self._check(name)
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Removes `name` (a test's or a plugin's toy); the others keep their order."""
        self._classes.pop(name, None)

    def get(self, name: str) -> type[T]:
        if name not in self._classes:
            raise UserError(f"unknown {self.what} {name!r}; choose one of: {', '.join(self._classes)}")
        return self._classes[name]

    def create(self, name: str, *args: Any, **kw: Any) -> T:
        return self.get(name)(*args, **kw)

    def names(self) -> list[str]:
        return list(self._classes)

    def items(self) -> list[tuple[str, type[T]]]:
        return list(self._classes.items())

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __getitem__(self, name: str) -> type[T]:
        return self.get(name)
