"""Two SQLite databases for the guides' examples: local.db and production.db, made here.

Each gets a table ``items`` (made anew) with its own rows. Prints the variables
that name them, for a ``.env`` file: ``python example_databases.py > .env``.
"""

from pathlib import Path

import sqlalchemy as sa

ROWS = {"local": ["local-1"], "production": ["prod-1", "prod-2"]}

for name, labels in ROWS.items():
    url = f"sqlite:///{Path(f'{name}.db').absolute()}"  # absolute: Flask reads relative ones
    engine = sa.create_engine(url)  # elsewhere (its instance folder)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS items"))
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(100))"))
        for label in labels:
            conn.execute(sa.text("INSERT INTO items (label) VALUES (:label)"), {"label": label})
    engine.dispose()
    print(f"DATABASE_URL_{name.upper()}={url}")
