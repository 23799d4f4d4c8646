"""A test that needs production: not discovered by ``manage.py test`` (not ``test*.py``);
run by name, ``manage.py test shop.production_checks``."""

from __future__ import annotations

from django.test import SimpleTestCase

import dbswap.django


class ProductionTests(SimpleTestCase):
    def test_production_answers(self) -> None:
        board = dbswap.django.get_board()
        self.assertEqual(board.active, "local")  # a test run starts on the default target
        health = board.check("production")[0]
        self.assertTrue(health.ok, health.error)
