"""The app's own tests, as `manage.py test` runs them, with dbswap's router installed."""

from __future__ import annotations

from django.test import TestCase

from .models import Item


class ItemTests(TestCase):
    def test_the_orm_works_on_the_test_database(self) -> None:
        Item.objects.create(label="made-in-test")
        self.assertEqual(list(Item.objects.values_list("label", flat=True)), ["made-in-test"])

    def test_views_read_the_test_database(self) -> None:
        Item.objects.create(label="seen-by-view")
        response = self.client.get("/items")
        self.assertEqual(response.json(), {"alias": "default", "labels": ["seen-by-view"]})


class LoanTests(TestCase):
    def test_a_signed_in_client_reads_its_own_rows(self) -> None:
        from django.contrib.auth.models import User

        from .models import Loan

        reader = User.objects.create_user("reader", password="pw")
        Loan.objects.create(borrower_id=reader.pk, title="mine")
        Loan.objects.create(borrower_id=reader.pk + 1, title="not mine")
        self.client.force_login(reader)
        response = self.client.get("/mybooks/")
        self.assertEqual(response.json(), {"user": "reader", "titles": ["mine"]})
