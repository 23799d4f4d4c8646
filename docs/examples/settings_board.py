"""A board from an app's own settings object, with engine options for every target and one."""

from pydantic_settings import BaseSettings

from dbswap import Switchboard


class Settings(BaseSettings):
    database_url_local: str  # read from DATABASE_URL_LOCAL, as pydantic-settings does
    database_url_production: str


settings = Settings()  # type: ignore[call-arg]
board = Switchboard(
    targets={"local": settings.database_url_local, "production": settings.database_url_production},
    runtime_dir=".runtime",
    engine_options={"pool_pre_ping": True, "echo": False},  # every target
    target_options={"production": {"pool_recycle": 300}},  # one target
)
print(board.active, sorted(board.targets))
board.close()
