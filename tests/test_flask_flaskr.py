"""A flaskr-shaped app wired with dbswap passes flaskr's own suite, ``DATABASE_URL`` included.

The app is written here in the shape of Flask-SQLAlchemy's flaskr example (Flask's
tutorial on Flask-SQLAlchemy): an app factory that takes ``DATABASE_URL`` when the
deploy environment sets it (else a SQLite file in the instance folder), blueprints
``auth`` and ``blog``, a ``load_logged_in_user`` that loads ``session["user_id"]``
from the database, and ``flask init-db``. dbswap is wired as docs/guides/flask.md
shows: ``db`` with dbswap's ``Session``, ``swap.init_app(app, db=db)``.

The developer's ``.env`` makes flaskr's default file the ``local`` target
(``DATABASE_URL_LOCAL=sqlite:///flaskr.sqlite``, a file in the instance folder).
The tests under "flaskr's suite" are flaskr's, unchanged in what they assert;
``test_db_url_environ`` is its exact body. ``tests/test_flask_flaskr_previews.py``
drives the same app against two targets.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from flask.testing import FlaskClient, FlaskCliRunner
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.test import TestResponse

import dbswap
from dbswap.flask import DBSwap, Forbidden, NotAuthenticated, Session

# -- the app ----------------------------------------------------------------------------

db = SQLAlchemy(session_options={"class_": Session})  # db.session follows the switch


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Post(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey(User.id))
    created: Mapped[datetime] = mapped_column(default=datetime.now)
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    author: Mapped[User] = relationship(lazy="joined")


def authorize() -> str:
    """Who may use dbswap's admin routes: a flag set at log-in, never a switched database."""
    admin = session.get("admin")
    if admin is None:
        if session.get("user_id") is not None:
            raise Forbidden()
        raise NotAuthenticated()
    return str(admin)


swap = DBSwap(authorize=authorize)  # its board: Switchboard.from_env(), one per app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the app (flaskr's factory, with dbswap)."""
    app = Flask(__name__, instance_path=os.path.abspath("instance"), instance_relative_config=True)
    db_url = os.environ.get("DATABASE_URL")  # some deploy systems set the database URL
    if db_url is None:
        db_url = "sqlite:///" + os.path.join(app.instance_path, "flaskr.sqlite")
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev"),
        SQLALCHEMY_DATABASE_URI=db_url,
        ADMINS=(),  # usernames that may use dbswap's admin page
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.update(test_config)
    swap.init_app(app, db=db)  # in place of db.init_app(app)
    app.cli.add_command(init_db_command)
    app.register_blueprint(auth_bp)
    app.register_blueprint(blog_bp)
    app.add_url_rule("/", endpoint="index")
    return app


def init_db() -> None:
    db.drop_all()
    db.create_all()


@click.command("init-db")
def init_db_command() -> None:
    """Clear the data and create new tables."""
    globals()["init_db"]()  # looked up at call time, so a test can replace it
    click.echo("Initialized the database.")


PAGE = """<nav>{% if g.user %}<span>{{ g.user.username }}</span> <a href="/auth/logout">Log Out</a>
{% else %}<a href="/auth/register">Register</a> <a href="/auth/login">Log In</a>{% endif %}</nav>
{% for message in get_flashed_messages() %}<div class="flash">{{ message }}</div>{% endfor %}
{{ content|safe }}"""

auth_bp = Blueprint("auth", __name__, url_prefix="/auth")


def page(content: str = "", **context: Any) -> str:
    body = render_template_string(content, **context)
    return render_template_string(PAGE, content=body, get_flashed_messages=get_flashed_messages)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("auth.login"))
        return view(**kwargs)

    return wrapped


@auth_bp.before_app_request
def load_logged_in_user() -> None:
    user_id = session.get("user_id")
    g.user = db.session.get(User, user_id) if user_id is not None else None


FORM = '<form method="post"><input name="username"><input name="password"></form>'


@auth_bp.route("/register", methods=("GET", "POST"))
def register() -> Any:
    if request.method == "POST":
        username, password = request.form["username"], request.form["password"]
        error = None
        if not username:
            error = "Username is required."
        elif not password:
            error = "Password is required."
        elif db.session.scalar(sa.select(User.id).where(User.username == username)) is not None:
            error = f"User {username} is already registered."
        if error is None:
            db.session.add(User(username=username, password_hash=generate_password_hash(password)))
            db.session.commit()
            return redirect(url_for("auth.login"))
        flash(error)
    return page(FORM)


@auth_bp.route("/login", methods=("GET", "POST"))
def login() -> Any:
    if request.method == "POST":
        username, password = request.form["username"], request.form["password"]
        user = db.session.scalar(sa.select(User).where(User.username == username))
        error = None
        if user is None:
            error = "Incorrect username."
        elif not user.check_password(password):
            error = "Incorrect password."
        if error is None:
            assert user is not None
            session.clear()
            session["user_id"] = user.id
            if user.username in current_app.config["ADMINS"]:
                session["admin"] = user.username
            return redirect(url_for("index"))
        flash(error)
    return page(FORM)


@auth_bp.route("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("index"))


blog_bp = Blueprint("blog", __name__)

INDEX = """{% for post in posts %}<article><h1>{{ post.title }}</h1>
<div class="about">by {{ post.author.username }} on {{ post.created.strftime('%Y-%m-%d') }}</div>
{% if g.user and g.user.id == post.author_id %}
<a href="{{ url_for('blog.update', id=post.id) }}">Edit</a>{% endif %}
<p class="body">{{ post.body }}</p></article>{% endfor %}"""


@blog_bp.route("/")
def index() -> str:
    posts = db.session.scalars(sa.select(Post).order_by(Post.created.desc())).all()
    return page(INDEX, posts=posts)


def get_post(id: int, check_author: bool = True) -> Post:
    post = db.get_or_404(Post, id, description=f"Post id {id} doesn't exist.")
    if check_author and post.author_id != g.user.id:
        abort(403)
    return post


POST_FORM = '<form method="post"><input name="title"><textarea name="body"></textarea></form>'


@blog_bp.route("/create", methods=("GET", "POST"))
@login_required
def create() -> Any:
    if request.method == "POST":
        title, body = request.form["title"], request.form["body"]
        if not title:
            flash("Title is required.")
        else:
            db.session.add(Post(title=title, body=body, author=g.user))
            db.session.commit()
            return redirect(url_for("blog.index"))
    return page(POST_FORM)


@blog_bp.route("/<int:id>/update", methods=("GET", "POST"))
@login_required
def update(id: int) -> Any:
    post = get_post(id)
    if request.method == "POST":
        title, body = request.form["title"], request.form["body"]
        if not title:
            flash("Title is required.")
        else:
            post.title, post.body = title, body
            db.session.commit()
            return redirect(url_for("blog.index"))
    return page(POST_FORM)


@blog_bp.route("/<int:id>/delete", methods=("POST",))
@login_required
def delete(id: int) -> Any:
    db.session.delete(get_post(id))
    db.session.commit()
    return redirect(url_for("blog.index"))


# -- the developer's machine --------------------------------------------------------------


@pytest.fixture(autouse=True)
def developer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of a developer whose ``.env`` names two targets (SQLite files,
    flaskr's default one among them) and a runtime dir of the test's own."""
    for key in list(os.environ):
        if key.startswith(("DATABASE_URL", "DBSWAP_")) or key == "SECRET_KEY":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "DATABASE_URL_LOCAL=sqlite:///flaskr.sqlite\n"  # a file in the instance folder
        f"DATABASE_URL_PRODUCTION=sqlite:///{tmp_path / 'production.sqlite'}\n"
        f"DBSWAP_RUNTIME_DIR={tmp_path / 'runtime'}\n"
    )
    return tmp_path


def dispose(app: Flask) -> None:
    state = app.extensions.get("dbswap")
    if isinstance(getattr(state, "board", None), dbswap.Switchboard):
        state.board.dispose()


# -- flaskr's suite (its conftest, then its tests) -------------------------------------------

_test_password = generate_password_hash("test")
_other_password = generate_password_hash("other")


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite:///:memory:"})
    with app.app_context():
        init_db()
        user = User(username="test", password_hash=_test_password)
        db.session.add_all(
            (
                user,
                User(username="other", password_hash=_other_password),
                Post(
                    title="test title", body="test\nbody", author=user, created=datetime(2018, 1, 1)
                ),
            )
        )
        db.session.commit()
    yield app
    dispose(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, username: str = "test", password: str = "test") -> TestResponse:
        return self._client.post("/auth/login", data={"username": username, "password": password})

    def logout(self) -> TestResponse:
        return self._client.get("/auth/logout")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def test_config() -> None:
    """Test create_app without passing test config."""
    plain, testing = create_app(), create_app({"TESTING": True})
    assert not plain.testing
    assert testing.testing
    dispose(plain)
    dispose(testing)


def test_db_url_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test DATABASE_URL environment variable."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:///environ")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///environ"


def test_init_db_command(runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    called = False

    def fake_init_db() -> None:
        nonlocal called
        called = True

    monkeypatch.setitem(globals(), "init_db", fake_init_db)
    result = runner.invoke(args=["init-db"])
    assert "Initialized" in result.output
    assert called


def test_register(client: FlaskClient, app: Flask) -> None:
    assert client.get("/auth/register").status_code == 200
    response = client.post("/auth/register", data={"username": "a", "password": "a"})
    assert response.headers["Location"] == "/auth/login"
    with app.app_context():
        assert db.session.scalar(sa.select(User).where(User.username == "a")) is not None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "", b"Username is required."),
        ("a", "", b"Password is required."),
        ("test", "test", b"already registered"),
    ],
)
def test_register_validate_input(
    client: FlaskClient, username: str, password: str, message: bytes
) -> None:
    response = client.post("/auth/register", data={"username": username, "password": password})
    assert message in response.data


def test_login(client: FlaskClient, auth: AuthActions) -> None:
    assert client.get("/auth/login").status_code == 200
    response = auth.login()
    assert response.headers["Location"] == "/"
    with client:
        client.get("/")
        assert session["user_id"] == 1
        assert g.user.username == "test"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [("a", "test", b"Incorrect username."), ("test", "a", b"Incorrect password.")],
)
def test_login_validate_input(
    auth: AuthActions, username: str, password: str, message: bytes
) -> None:
    response = auth.login(username, password)
    assert message in response.data


def test_logout(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()
    with client:
        auth.logout()
        assert "user_id" not in session


def test_index(client: FlaskClient, auth: AuthActions) -> None:
    text = client.get("/").text
    assert "Log In" in text
    assert "Register" in text
    auth.login()
    text = client.get("/").text
    assert "test title" in text
    assert "by test on 2018-01-01" in text
    assert "test\nbody" in text
    assert 'href="/1/update"' in text


@pytest.mark.parametrize("path", ["/create", "/1/update", "/1/delete"])
def test_login_required(client: FlaskClient, path: str) -> None:
    response = client.post(path)
    assert response.headers["Location"] == "/auth/login"


def test_author_required(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    with app.app_context():
        post = db.session.get(Post, 1)
        assert post is not None
        post.author = db.session.get(User, 2)
        db.session.commit()
    auth.login()
    assert client.post("/1/update").status_code == 403
    assert client.post("/1/delete").status_code == 403
    assert 'href="/1/update"' not in client.get("/").text


@pytest.mark.parametrize("path", ["/2/update", "/2/delete"])
def test_exists_required(client: FlaskClient, auth: AuthActions, path: str) -> None:
    auth.login()
    assert client.post(path).status_code == 404


def test_create(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    assert client.get("/create").status_code == 200
    client.post("/create", data={"title": "created", "body": ""})
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Post.id))) == 2


def test_update(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    assert client.get("/1/update").status_code == 200
    client.post("/1/update", data={"title": "updated", "body": ""})
    with app.app_context():
        post = db.session.get(Post, 1)
        assert post is not None and post.title == "updated"


@pytest.mark.parametrize("path", ["/create", "/1/update"])
def test_create_update_validate(client: FlaskClient, auth: AuthActions, path: str) -> None:
    auth.login()
    response = client.post(path, data={"title": "", "body": ""})
    assert "Title is required." in response.text


def test_delete(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    response = client.post("/1/delete")
    assert response.headers["Location"] == "/"
    with app.app_context():
        assert db.session.get(Post, 1) is None


# -- what dbswap does around that suite ------------------------------------------------


def _tables(path: Path) -> list[str]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_without_database_url_the_app_follows_the_switch(developer: Path) -> None:
    """flaskr's default file is the ``local`` target: requests are pinned and switch."""
    app = create_app()
    board = app.extensions["dbswap"].board
    try:
        with app.app_context():
            for name in board.targets:
                with board.pinned(name):
                    init_db()
        client = app.test_client()
        client.post("/auth/register", data={"username": "ann", "password": "pw"})
        board.use("production", user="test")
        client.post("/auth/register", data={"username": "bea", "password": "pw"})
    finally:
        board.dispose()
    local = developer / "instance" / "flaskr.sqlite"
    with sa.create_engine(f"sqlite:///{local}").connect() as conn:
        assert conn.execute(sa.text("SELECT username FROM users")).scalars().all() == ["ann"]
    production = sa.create_engine(f"sqlite:///{developer / 'production.sqlite'}")
    with production.connect() as conn:
        assert conn.execute(sa.text("SELECT username FROM users")).scalars().all() == ["bea"]
    production.dispose()


def test_a_deploy_database_url_makes_dbswap_step_aside_loudly(
    developer: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``SQLALCHEMY_DATABASE_URI`` is the environment's ``DATABASE_URL`` and not a target:
    the app uses that database through Flask-SQLAlchemy's own engine, with one warning
    (the password masked); nothing is pinned, no admin route or ``flask dbswap`` command is
    served, and nothing reaches the targets."""
    deployed = developer / "deployed.sqlite"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{deployed}")
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        app = create_app()
    warnings = [r.getMessage() for r in caplog.records if "steps aside" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "DATABASE_URL" in warnings[0] and str(deployed) in warnings[0]
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{deployed}"
    with app.app_context():
        init_db()
        assert db.session().dbswap_target is None  # not pinned: Flask-SQLAlchemy's engine
    client = app.test_client()
    client.post("/auth/register", data={"username": "ann", "password": "pw"})
    assert client.get("/api/admin/database").status_code == 404
    assert client.get("/admin/configuration").status_code == 404
    assert "dbswap" not in app.cli.list_commands(click.Context(app.cli))
    with app.app_context():
        db.engine.dispose()
    assert _tables(deployed) == ["posts", "users"]
    assert not (developer / "instance" / "flaskr.sqlite").exists()
    assert not (developer / "production.sqlite").exists()


def test_a_database_url_with_a_password_is_masked_and_needs_no_targets(
    developer: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A deploy with no ``DATABASE_URL_<NAME>`` at all: dbswap steps aside, it does not fail."""
    (developer / ".env").unlink()
    url = "postgresql+psycopg://app:s3cret-pw@db.example:5432/flaskr"
    monkeypatch.setenv("DATABASE_URL", url)
    with caplog.at_level(logging.WARNING, logger="dbswap"):
        app = create_app()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "steps aside" in text and "s3cret-pw" not in text and "***" in text
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    with app.app_context():
        db.engine.dispose()


def test_a_database_url_that_is_a_target_follows_the_switch(
    developer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer's old ``DATABASE_URL`` equal to ``local``'s URL: the app follows dbswap."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{developer / 'instance' / 'flaskr.sqlite'}")
    app = create_app()
    try:
        with app.test_request_context("/"):
            app.preprocess_request()
            assert db.session().dbswap_target == "local"
    finally:
        dispose(app)


def test_a_uri_that_is_neither_a_target_nor_database_url_is_still_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Never silently a database nobody chose: the config names one, the environment another."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:///environ")
    with pytest.raises(dbswap.ConfigError, match="not a dbswap target"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite:///elsewhere"})
