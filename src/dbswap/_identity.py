"""A login belongs to the target it was made on: stamping it, and checking the stamp.

A session or a token says who someone is by an id read from one database; on
another target the same id may be somebody else (local's user 3 is not
production's). So the adapters stamp a login with the target it was made on,
under :data:`KEY`, and drop or refuse it when it comes back while another
target is in use. These functions only read and write a mapping (a Flask or
Django session, a token's claims); when to call them is each adapter's business.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping
from typing import Any

KEY = "_dbswap_target"
"""The session key (or token claim) that holds the target a login was made on."""

PREVIEW_KEY = "_dbswap_preview"
"""The session key under which a login made during a preview waits for that preview's pages."""


def stamp(claims: MutableMapping[str, Any], target: str) -> None:
    """Record in ``claims`` that they were issued while ``target`` was in use."""
    claims[KEY] = target


def stamped(claims: Mapping[str, Any]) -> str | None:
    """The target ``claims`` were issued on, or None if they carry no stamp."""
    value = claims.get(KEY)
    return value if isinstance(value, str) else None


def matches(claims: Mapping[str, Any], target: str) -> bool:
    """Whether ``claims`` were issued on ``target``; claims without a stamp match nothing."""
    return stamped(claims) == target


def holds_login(session: Mapping[str, Any], keys: Collection[str] | None) -> bool:
    """Whether ``session`` holds something bound to a target: one of ``keys``, or
    (``keys`` None) anything at all besides dbswap's own keys."""
    if keys is None:
        return any(key not in (KEY, PREVIEW_KEY) for key in session)
    return any(key in session for key in keys)


def unbind(session: MutableMapping[str, Any], keys: Collection[str] | None) -> None:
    """Forget what ``session`` holds for its target: ``keys`` and the stamp, or
    (``keys`` None) everything, which logs the visitor out."""
    if keys is None:
        session.clear()
        return
    for key in (*keys, KEY):
        session.pop(key, None)


PreviewId = tuple[str, str, float]
"""A preview, as a login made during it is kept for it: (admin, target, end)."""


def kept_for_preview(
    login: Mapping[str, Any], preview: PreviewId, keys: Collection[str] | None = None
) -> dict[str, Any] | None:
    """What :data:`PREVIEW_KEY` holds for a login made during ``preview`` (None: nothing
    to keep): that login, stamped with the previewed target, for that preview only."""
    if not holds_login(login, keys):
        return None
    session = {k: v for k, v in login.items() if k != PREVIEW_KEY}
    stamp(session, preview[1])
    return {"user": preview[0], "target": preview[1], "expires": preview[2], "session": session}


def login_of_preview(record: object, preview: PreviewId) -> dict[str, Any]:
    """The login ``record`` keeps for ``preview`` (empty unless it is that very preview's)."""
    if not isinstance(record, Mapping):
        return {}
    session = record.get("session")
    same = (record.get("user"), record.get("target"), record.get("expires")) == preview
    return dict(session) if same and isinstance(session, Mapping) else {}


def moved_message(issued_on: str, target: str) -> str:
    """Why a login was dropped or refused, for the person who has to sign in again."""
    return (
        f"You were signed in while the {issued_on!r} database was in use; the site now "
        f"uses {target!r}, where that account may be somebody else's: sign in again."
    )
