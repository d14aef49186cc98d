"""The shop with all four payment providers and their fakes, as
``tests/payments/test_checkout.py`` runs it (its fixtures, shared here)."""

from __future__ import annotations

from tests.payments.test_checkout import providers, shop_with

__all__ = ["providers", "shop_with"]
