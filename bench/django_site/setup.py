"""``python -m bench.django_site.setup``: migrate and seed every database of the dbswap settings.

Run by the harness before the servers start, with the servers' environment.
First it checks that the two variants are configured alike: the dbswap
settings' ``default`` alias (from ``databases_from_env()``) must be exactly
what the plain settings make of ``BENCH_DJANGO_URL``. Then, for each alias,
``manage.py migrate --database=<alias>`` (so a switch finds every target
migrated) and the same catalog: 5 authors, 4 genres, 20 books, 3 copies each.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

BOOKS = 20
COPIES = 3


def seed(alias: str) -> None:
    from bench.django_site.catalog.models import Author, Book, BookInstance, Genre

    genres = [
        Genre.objects.using(alias).create(name=name)
        for name in ("Fantasy", "Science Fiction", "History", "Poetry")
    ]
    authors = [
        Author.objects.using(alias).create(
            first_name=f"First{i}",
            last_name=f"Last{i}",
            date_of_birth=datetime.date(1950 + i, 1, 1),
        )
        for i in range(5)
    ]
    for i in range(BOOKS):
        book = Book.objects.using(alias).create(
            title=f"Book {i:02d}",
            author=authors[i % len(authors)],
            summary=f"The summary of book {i}. " * 8,
            isbn=f"{9780000000000 + i}",
        )
        book.genre.set(genres[i % 2 : i % 2 + 2])
        for copy in range(COPIES):
            BookInstance.objects.using(alias).create(
                book=book,
                imprint=f"Imprint {copy}",
                status="amor"[(i + copy) % 4],
                due_back=datetime.date(2030, 1, 1 + copy),
            )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_site.settings_dbswap")
    import dj_database_url
    import django
    from django.conf import settings
    from django.core.management import call_command

    from bench.django_site import _common

    plain = dj_database_url.parse(
        os.environ["BENCH_DJANGO_URL"],
        conn_max_age=_common.CONN_MAX_AGE,
        conn_health_checks=_common.CONN_HEALTH_CHECKS,
    )
    if dict(plain) != settings.DATABASES["default"]:
        raise SystemExit(
            f"the variants differ: plain {_redacted(plain)}, dbswap "
            f"{_redacted(settings.DATABASES['default'])}"
        )
    django.setup()
    for alias in settings.DATABASES:
        call_command("migrate", database=alias, verbosity=0, interactive=False)
        seed(alias)


def _redacted(config: Any) -> dict[str, Any]:
    return {key: value for key, value in dict(config).items() if key != "PASSWORD"}


if __name__ == "__main__":
    main()
