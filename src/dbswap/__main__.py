"""``python -m dbswap``: the same as the ``dbswap`` command."""

from dbswap.cli import main

main()
