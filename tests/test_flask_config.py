"""``dbswap.flask`` and the app's own configuration: what Flask-SQLAlchemy would open, it opens.

- A relative SQLite path (``DATABASE_URL_LOCAL=sqlite:///app.db``) is a file in
  the app's instance folder, as Flask-SQLAlchemy has it, not in the working
  directory; so is ``SQLALCHEMY_DATABASE_URI=sqlite:///app.db``.
- A flaskr-style app whose test config names its own database
  (``{"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite:///:memory:"}``)
  keeps passing its own tests: dbswap steps aside for it, with one warning,
  and writes nothing to the targets. Outside testing that config is refused.

The boards here are built by ``DBSwap.init_app`` from the environment (the
real one, through ``monkeypatch``, and ``.env`` in the working directory).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g, redirect, request
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

import dbswap
from dbswap.flask import DBSwap, Session

pytestmark = pytest.mark.postgres


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an environment without dbswap variables."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for key in list(os.environ):
        if key.startswith(("DATABASE_URL", "DBSWAP_")):
            monkeypatch.delenv(key)
    return work


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _target(db: SQLAlchemy) -> str | None:
    """The target ``db.session`` is pinned to (None: not pinned)."""
    session = db.session()
    assert isinstance(session, Session)
    return session.dbswap_target


def _sqlite_labels(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT label FROM items ORDER BY id")]


# -- relative SQLite paths: the instance folder ----------------------------------------


def _items_app(instance: Path, uri: str | None = None, board: Any = None) -> Flask:
    db = SQLAlchemy(session_options={"class_": Session})

    class Item(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str] = mapped_column(sa.String(100))

    app = Flask(__name__, instance_path=str(instance))
    if uri is not None:
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    DBSwap(app, db=db, board=board)

    @app.post("/items")
    def create() -> Any:
        db.session.add(Item(label=request.get_json()["label"]))
        db.session.commit()
        return {"target": _target(db)}, 201

    with app.app_context():
        db.create_all()
    return app


@pytest.mark.parametrize("uri", [None, "sqlite:///app.db"], ids=["uri-unset", "uri-relative"])
def test_a_relative_sqlite_target_is_the_file_flask_sqlalchemy_would_open(
    workdir: Path,
    tmp_path: Path,
    pg_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    uri: str | None,
) -> None:
    """``DATABASE_URL_LOCAL=sqlite:///app.db`` (from ``.env`` in the working directory) is
    ``<instance_path>/app.db``: a row written through ``db.session`` lands there, nothing
    appears in the working directory, and Flask-SQLAlchemy alone opens the same file."""
    (workdir / ".env").write_text("DATABASE_URL_LOCAL=sqlite:///app.db\n")
    production = pg_url("production")
    monkeypatch.setenv("DATABASE_URL_PRODUCTION", production)
    instance = tmp_path / "instance"  # missing: created, as Flask-SQLAlchemy does
    app = _items_app(instance, uri)
    board = app.extensions["dbswap"].board
    try:
        assert instance.is_dir()
        expected = instance.resolve() / "app.db"
        assert board.url_for("local") == f"sqlite:///{expected}"
        assert board.url_for("production") == production  # server URLs unchanged
        assert app.config["SQLALCHEMY_DATABASE_URI"] in (uri, board.url_for("local"))
        response = app.test_client().post("/items", json={"label": "from-the-app"})
        assert response.status_code == 201 and response.get_json()["target"] == "local"
    finally:
        board.dispose()
    assert _sqlite_labels(expected) == ["from-the-app"]
    assert not (workdir / "app.db").exists()
    assert sorted(tmp_path.rglob("app.db")) == [instance / "app.db"]
    assert _tables(production) == []

    # Flask-SQLAlchemy alone, same instance folder, same relative URI: the same file.
    alone = Flask(__name__, instance_path=str(instance))
    alone.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"
    plain = SQLAlchemy()
    plain.init_app(alone)
    with alone.app_context():
        database = plain.engine.url.database
        assert database is not None and Path(database).samefile(expected)
        rows = plain.session.execute(sa.text("SELECT label FROM items")).scalars().all()
        assert rows == ["from-the-app"]
        plain.engine.dispose()


def test_absolute_sqlite_paths_stay_where_they_are(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "data" / "local.db"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("DATABASE_URL_LOCAL", f"sqlite:///{elsewhere}")
    instance = tmp_path / "instance"
    app = _items_app(instance)
    board = app.extensions["dbswap"].board
    try:
        assert board.url_for("local") == f"sqlite:///{elsewhere.resolve()}"
        assert app.test_client().post("/items", json={"label": "abs"}).status_code == 201
    finally:
        board.dispose()
    assert _sqlite_labels(elsewhere) == ["abs"]
    assert not instance.exists()  # no target lives there: not created


def test_a_relative_database_uri_means_the_instance_file_even_with_a_given_board(
    workdir: Path, tmp_path: Path
) -> None:
    """A board given to DBSwap whose ``local`` is ``<cwd>/app.db``: the app's
    ``SQLALCHEMY_DATABASE_URI=sqlite:///app.db`` is ``<instance>/app.db`` to
    Flask-SQLAlchemy, another file, so it is refused rather than silently swapped."""
    board = dbswap.Switchboard({"local": "sqlite:///app.db"}, runtime_dir=tmp_path / "rt")
    try:
        assert board.url_for("local") == f"sqlite:///{(workdir / 'app.db').resolve()}"
        with pytest.raises(dbswap.ConfigError, match="not a dbswap target"):
            _items_app(tmp_path / "instance", "sqlite:///app.db", board=board)
    finally:
        board.dispose()


# -- a flaskr-style app and its own tests ---------------------------------------------

flaskr_db = SQLAlchemy(session_options={"class_": Session})  # as the README says
swap = DBSwap()  # its board: Switchboard.from_env(), one per app


class Post(flaskr_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "post"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)


def create_app(
    test_config: dict[str, Any] | None = None, *, instance: Path, db_first: bool = False
) -> Flask:
    """The flaskr tutorial's factory, with Flask-SQLAlchemy and dbswap (in either order)."""
    app = Flask(__name__, instance_path=str(instance))
    app.config.from_mapping(SECRET_KEY="dev")
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    if db_first:
        flaskr_db.init_app(app)
        swap.init_app(app)  # finds the registered db
    else:
        swap.init_app(app, db=flaskr_db)

    @app.get("/")
    def index() -> str:
        posts = flaskr_db.session.scalars(sa.select(Post).order_by(Post.id)).all()
        return "\n".join(f"<h1>{post.title}</h1><p>{post.body}</p>" for post in posts)

    @app.route("/create", methods=["GET", "POST"])
    def create() -> Any:
        if request.method == "POST":
            flaskr_db.session.add(Post(title=request.form["title"], body=request.form["body"]))
            flaskr_db.session.commit()
            return redirect("/")
        return "<form method=post></form>"

    @app.post("/<int:id>/update")
    def update(id: int) -> Any:
        post = flaskr_db.get_or_404(Post, id)
        post.title = request.form["title"]
        flaskr_db.session.commit()
        return redirect("/")

    return app


TEST_CONFIG = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite:///:memory:"}


@pytest.fixture
def targets(
    workdir: Path,
    sqlite_url: Callable[[str], str],
    pg_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The developer's targets, as the environment names them."""
    urls = {"local": sqlite_url("local"), "production": pg_url("production")}
    for name, url in urls.items():
        monkeypatch.setenv(f"DATABASE_URL_{name.upper()}", url)
    return urls


@pytest.fixture
def app(targets: dict[str, str], tmp_path: Path) -> Iterator[Flask]:
    """flaskr's conftest: its own in-memory database, created and seeded."""
    app = create_app(TEST_CONFIG, instance=tmp_path / "instance")
    with app.app_context():
        flaskr_db.create_all()
        flaskr_db.session.add(Post(title="test title", body="test\nbody"))
        flaskr_db.session.commit()
    yield app
    app.extensions["dbswap"].board.dispose()
    # Nothing the app's tests did reached the developer's databases.
    assert [_tables(url) for url in targets.values()] == [[], []]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_flaskr_index(client: FlaskClient) -> None:
    response = client.get("/")
    assert b"test title" in response.data
    assert b"test\nbody" in response.data


def test_flaskr_create(client: FlaskClient, app: Flask) -> None:
    assert client.get("/create").status_code == 200
    client.post("/create", data={"title": "created", "body": ""})
    with app.app_context():
        count = flaskr_db.session.scalar(sa.select(sa.func.count()).select_from(Post))
        assert count == 2


def test_flaskr_update(client: FlaskClient, app: Flask) -> None:
    client.post("/1/update", data={"title": "updated", "body": ""})
    with app.app_context():
        post = flaskr_db.session.get(Post, 1)
        assert post is not None and post.title == "updated"


@pytest.mark.parametrize("db_first", [False, True], ids=["swap-inits-db", "db-init-app-first"])
def test_dbswap_steps_aside_for_a_test_config_that_names_its_own_database(
    targets: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture, db_first: bool
) -> None:
    """Flask-SQLAlchemy's own engine, no pin, one warning, nothing written to the targets."""
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        app = create_app(TEST_CONFIG, instance=tmp_path / "instance", db_first=db_first)
    warnings = [r.getMessage() for r in caplog.records if r.name == "dbswap"]
    assert len(warnings) == 1, warnings
    assert "does not switch" in warnings[0] and "test config" in warnings[0]
    assert "sqlite:///:memory:" in warnings[0]
    try:
        engines = flaskr_db._app_engines[app]
        assert type(engines) is dict  # Flask-SQLAlchemy's own map, not replaced
        assert engines[None].url.database == ":memory:"
        with app.app_context():
            flaskr_db.create_all()
        client = app.test_client()
        client.post("/create", data={"title": "mine", "body": "b"})
        assert b"mine" in client.get("/").data
        with app.test_request_context("/"):
            app.preprocess_request()
            assert g.get("_dbswap_pin") is None  # requests are not pinned to a target
            assert _target(flaskr_db) is None
            assert flaskr_db.session.get_bind() is engines[None]
        assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///:memory:"
    finally:
        app.extensions["dbswap"].board.dispose()
    assert [_tables(url) for url in targets.values()] == [[], []]


@pytest.mark.parametrize("db_first", [False, True], ids=["swap-inits-db", "db-init-app-first"])
def test_the_same_config_outside_testing_is_refused(
    targets: dict[str, str], tmp_path: Path, db_first: bool
) -> None:
    """Never silently another database, whichever extension is initialised first."""
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite:///:memory:"}
    with pytest.raises(dbswap.ConfigError, match="not a dbswap target"):
        create_app(config, instance=tmp_path / "instance", db_first=db_first)


def test_a_test_config_without_a_database_uri_still_follows_dbswap(
    targets: dict[str, str], tmp_path: Path
) -> None:
    """Stepping aside is only for a test config that names a database of its own."""
    app = create_app({"TESTING": True}, instance=tmp_path / "instance")
    try:
        assert app.config["SQLALCHEMY_DATABASE_URI"] == targets["local"]
        with app.test_request_context("/"):
            app.preprocess_request()
            assert _target(flaskr_db) == "local"
    finally:
        app.extensions["dbswap"].board.dispose()
