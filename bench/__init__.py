"""dbswap's benchmarks: ``python -m bench`` (``--help`` for the options).

Every figure is a ratio against a baseline measured in the same run,
interleaved round by round; see ``_measure.py`` for why and how.
"""
