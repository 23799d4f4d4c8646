"""Flask-Caching kept apart per target: a value cached on one is never read on another.

``DBSwap(app)`` is all it takes, whether ``Cache(app)`` (``cache.init_app(app)``)
ran before it or after. Flask-Caching keeps each ``Cache``'s backend in
``app.extensions["cache"]``; dbswap hands it a backend that puts the request's
target (``_request_flask.current_pin``: the previewed one in an admin's preview,
the active one outside a request) in front of every key: ``@production:`` +
the key, after the backend's own ``CACHE_KEY_PREFIX``. ``cache.get``/``set``,
``@cache.cached``, ``@cache.memoize``, ``{% cache %}`` and ``delete_memoized``
all go through it, so each target has its own values, a value cached while
local was active is there again when the site is back on local, and a
deletion made on one target leaves the others' values alone.
``cache.clear()`` still clears the whole backend (every target).

An app without Flask-Caching installed gets nothing; one that has it pays a
look at the request's pin per cache operation.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask

from ._request_flask import current_pin
from ._switchboard import Switchboard

EXTENSION = "cache"  # Flask-Caching's: {Cache: backend}


class TargetKeyed:
    """A Flask-Caching (cachelib) backend whose keys start with the request's target."""

    def __init__(self, backend: Any, board: Switchboard) -> None:
        self.backend = backend
        self._board = board

    def _prefix(self) -> str:
        return f"@{current_pin(self._board)[0]}:"

    def _keys(self, keys: Iterable[str]) -> tuple[str, list[str]]:
        prefix = self._prefix()
        return prefix, [prefix + key for key in keys]

    def get(self, key: str) -> Any:
        return self.backend.get(self._prefix() + key)

    def has(self, key: str) -> bool:
        return bool(self.backend.has(self._prefix() + key))

    def delete(self, key: str) -> bool:
        return bool(self.backend.delete(self._prefix() + key))

    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self.backend.set(self._prefix() + key, value, timeout=timeout)

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        return bool(self.backend.add(self._prefix() + key, value, timeout=timeout))

    def inc(self, key: str, delta: int = 1) -> Any:
        return self.backend.inc(self._prefix() + key, delta=delta)

    def dec(self, key: str, delta: int = 1) -> Any:
        return self.backend.dec(self._prefix() + key, delta=delta)

    def get_many(self, *keys: str) -> list[Any]:
        return list(self.backend.get_many(*self._keys(keys)[1]))

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None) -> list[Any]:
        prefix = self._prefix()
        done = self.backend.set_many({prefix + k: v for k, v in mapping.items()}, timeout=timeout)
        return _unprefixed(prefix, done)

    def delete_many(self, *keys: str) -> list[Any]:
        prefix, prefixed = self._keys(keys)
        return _unprefixed(prefix, self.backend.delete_many(*prefixed))

    def unlink(self, *keys: str) -> list[Any]:
        prefix, prefixed = self._keys(keys)
        unlink: Callable[..., Any] = getattr(self.backend, "unlink", self.backend.delete_many)
        return _unprefixed(prefix, unlink(*prefixed))

    def clear(self) -> bool:
        return bool(self.backend.clear())  # every target's: a backend cannot clear one prefix

    def __getattr__(self, name: str) -> Any:  # the backend's own (its client, its timeout)
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"<TargetKeyed {self.backend!r}>"


def _unprefixed(prefix: str, keys: Any) -> list[Any]:
    return [k[len(prefix) :] if isinstance(k, str) and k.startswith(prefix) else k for k in keys]


class TargetCaches(dict[Any, Any]):
    """``app.extensions["cache"]``: every backend Flask-Caching puts here is keyed per target."""

    def __init__(self, board: Switchboard, found: Mapping[Any, Any]) -> None:
        super().__init__()
        self._board = board
        for cache, backend in found.items():
            self[cache] = backend

    def __setitem__(self, cache: Any, backend: Any) -> None:
        if not isinstance(backend, TargetKeyed):
            backend = TargetKeyed(backend, self._board)
        super().__setitem__(cache, backend)


def install(app: Flask, board: Switchboard) -> None:
    """Key ``app``'s Flask-Caching backends per target, those made before and after."""
    found = app.extensions.get(EXTENSION)
    if isinstance(found, TargetCaches) or (found is not None and not isinstance(found, dict)):
        return  # keyed already, or another extension's "cache"
    if found is None and importlib.util.find_spec("flask_caching") is None:
        return  # no Flask-Caching: nothing to key
    app.extensions[EXTENSION] = TargetCaches(board, found or {})
