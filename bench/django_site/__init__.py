"""A small catalog project (MDN's LocalLibrary, cut down) for the ``django`` benchmark suite.

Two settings modules serve the same app: ``settings`` is plain Django, and
``settings_dbswap`` wires dbswap in exactly as docs/guides/django.md says. Both
read the environment the harness gives them (``bench/django_app.py``).
"""
