"""The demo's data: a DJ's tracks and events, different rows in each target.

Tables are prefixed ``dbswap_demo_`` so that pointing the demo at real
databases never touches an app's own tables. Rows are only inserted into a
table that is empty, so running the demo twice adds nothing.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .._switchboard import Switchboard

logger = logging.getLogger("dbswap.demo")


class Base(DeclarativeBase):
    pass


class Track(Base):
    __tablename__ = "dbswap_demo_tracks"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    artist: Mapped[str] = mapped_column(sa.String(200))
    bpm: Mapped[int]

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "artist": self.artist, "bpm": self.bpm}


class Event(Base):
    __tablename__ = "dbswap_demo_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    venue: Mapped[str] = mapped_column(sa.String(200))
    date: Mapped[str] = mapped_column(sa.String(10))  # ISO date: portable across dialects

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "venue": self.venue, "date": self.date}


# (title, artist, bpm): local holds work in progress, production the released catalogue.
SEED_TRACKS: dict[str, list[tuple[str, str, int]]] = {
    "local": [
        ("Night Drive (draft)", "DJ Larian", 122),
        ("Basement Loop 04 (draft)", "DJ Larian", 128),
        ("Untitled Sketch (draft)", "DJ Larian", 100),
    ],
    "production": [
        ("Sunset Boulevard", "DJ Larian", 124),
        ("Midnight Ferry", "DJ Larian feat. Nova", 118),
        ("Harbour Lights", "DJ Larian", 126),
        ("Last Train Home", "DJ Larian", 120),
    ],
}
# (title, venue, date)
SEED_EVENTS: dict[str, list[tuple[str, str, str]]] = {
    "local": [("Rehearsal (test event)", "Home studio", "2030-01-10")],
    "production": [
        ("Summer Terrace Session", "Le Rooftop, Lyon", "2030-06-21"),
        ("Warehouse Night", "Dock 7, Marseille", "2030-07-12"),
    ],
}


def seed_rows(target: str) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str]]]:
    """The tracks and events a target starts with (a generic row for other targets)."""
    tracks = SEED_TRACKS.get(target, [(f"{target} sample track", "DJ Larian", 120)])
    events = SEED_EVENTS.get(target, [(f"{target} sample event", "Somewhere", "2030-01-01")])
    return tracks, events


def prepare_target(url: str, target: str) -> None:
    """Create the demo tables if missing, and fill the empty ones."""
    engine = sa.create_engine(url, connect_args=_connect_args(url))
    try:
        Base.metadata.create_all(engine)
        tracks, events = seed_rows(target)
        with Session(engine) as session, session.begin():
            if session.scalar(sa.select(sa.func.count()).select_from(Track)) == 0:
                session.add_all(Track(title=t, artist=a, bpm=b) for t, a, b in tracks)
            if session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0:
                session.add_all(Event(title=t, venue=v, date=d) for t, v, d in events)
    finally:
        engine.dispose()


def prepare_databases(board: Switchboard) -> dict[str, str]:
    """Prepare every target; returns the masked reason for each one that failed."""
    failed: dict[str, str] = {}
    for name in board.targets:
        try:
            prepare_target(board.url_for(name), name)
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
            reason = board.mask(
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            failed[name] = reason
            logger.warning(
                "demo: cannot prepare target %r (%s); switching to it will fail", name, reason
            )
    return failed


def _connect_args(url: str) -> dict[str, object]:
    # A server that does not answer must not hang the demo's start-up.
    backend = sa.make_url(url).get_backend_name()
    return {"connect_timeout": 5} if backend in ("postgresql", "mysql", "mariadb") else {}
