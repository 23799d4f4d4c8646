"""``python -m dbswap.demo``: the same as ``dbswap demo``."""

from dbswap.demo.cli import demo_command

demo_command(prog_name="python -m dbswap.demo")
