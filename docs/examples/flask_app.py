"""A Flask-SQLAlchemy app whose db.session follows the switch, with dbswap's admin routes."""

from flask import Flask, session
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from dbswap.flask import DBSwap, Forbidden, NotAuthenticated, Session

db = SQLAlchemy(session_options={"class_": Session})  # db.session follows the switch


def authorize() -> str:  # never read a switched database here
    user = session.get("user")
    if user is None:
        raise NotAuthenticated()
    if user != "admin":
        raise Forbidden()
    return str(user)


swap = DBSwap(authorize=authorize)  # the board: Switchboard.from_env()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "change me"  # also keys the admin page's CSRF token
    swap.init_app(app, db=db)

    @app.get("/items")
    def items() -> dict[str, object]:
        rows = db.session.scalars(text("SELECT label FROM items ORDER BY label"))
        return {"target": db.session().dbswap_target, "items": list(rows)}

    return app
