"""Django's caches kept apart per target: a value cached on one is never read on another.

``INSTALLED_APPS = [..., "dbswap.django"]`` is all it takes. Every cache of
``CACHES`` that Django creates from then on makes its keys with the target the
request is pinned to (``current_pin()``: the previewed target in an admin's
preview, the active target outside a request): the project's ``KEY_PREFIX``
gets ``@<target>``, so with Django's default key function a key reads
``myapp@production:1:prices``. The low-level API, ``cache_page``, template
fragments, ``django-redis`` and every backend that makes its keys with
``make_key`` follow; a value cached while local was active is there again
when the site is back on local, and ``cache.clear()`` still clears every
target's values. Nothing is created for a project that uses no cache, and a
key costs one look at the request's pin.

- ``DBSWAP_SHARED_CACHES = ["ratelimit"]`` names aliases whose keys are the same
  on every target (counters, locks: nothing read from a database).
- Django's cached sessions (``django.contrib.sessions.cache`` and
  ``cached_db``) are keyed per target while logins are bound to their target,
  and shared when identity is (``DBSWAP_SHARED_IDENTITY``, or ``auth`` in
  ``DBSWAP_FIXED_APPS``), so a login holds wherever it is meant to.
- A ``KEY_FUNCTION`` of the project's own is kept; one that ignores the prefix
  gets ``@<target>:`` in front of the key it makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._identity import binds_sessions
from ._routing import current_pin

_SESSIONS = "django.contrib.sessions."  # the cache and cached_db session stores' keys
_INSTALLED = "_dbswap_per_target"

KeyFunction = Callable[[str, str, Any], str]


class TargetKeys:
    """A cache's key function, with the target of the request in every key it makes."""

    def __init__(self, key_func: KeyFunction) -> None:
        self.key_func = key_func
        # A key function of the project's own may ignore the prefix: then wrap its key.
        self._uses_prefix = key_func("k", "a", 1) != key_func("k", "b", 1)

    def __call__(self, key: str, key_prefix: str, version: Any) -> str:
        if key.startswith(_SESSIONS) and not binds_sessions():
            return self.key_func(key, key_prefix, version)  # one login on every target
        target = current_pin().target
        if self._uses_prefix:
            return self.key_func(key, f"{key_prefix}@{target}", version)
        return f"@{target}:{self.key_func(key, key_prefix, version)}"


def shared_caches() -> frozenset[str]:
    """The aliases of ``DBSWAP_SHARED_CACHES``: their keys are the same on every target."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    aliases = getattr(settings, "DBSWAP_SHARED_CACHES", ())
    if not isinstance(aliases, (list, tuple, set, frozenset)) or not all(
        isinstance(alias, str) for alias in aliases
    ):
        raise ImproperlyConfigured(
            'DBSWAP_SHARED_CACHES takes a list of CACHES aliases, e.g. ["ratelimit"]'
        )
    return frozenset(aliases)


def per_target(cache: Any) -> Any:
    """Key ``cache`` (a Django cache backend) per target; returns it."""
    if not isinstance(cache.key_func, TargetKeys):
        cache.key_func = TargetKeys(cache.key_func)
    return cache


def install() -> None:
    """Key every cache Django creates from now on per target (``DBSwapConfig.ready``).

    Django creates a cache per thread, on first use, in ``caches.create_connection``:
    that is wrapped, on Django's handler only. A setting change (``override_settings``
    of ``CACHES``) makes new caches through the same handler, keyed as well.
    """
    from django.core.cache import caches

    if getattr(caches, _INSTALLED, False):
        return
    create = caches.create_connection

    def create_connection(alias: str) -> Any:
        cache = create(alias)
        return cache if alias in shared_caches() else per_target(cache)

    caches.create_connection = create_connection
    setattr(caches, _INSTALLED, True)
    for alias in caches:  # a cache made before the app was ready (this thread's)
        made = getattr(caches._connections, alias, None)
        if made is not None and alias not in shared_caches():
            per_target(made)
