"""The providers' fakes and a shop that uses them, as the checkout tests set them up."""

from tests.payments.test_checkout import providers, shop_with

__all__ = ["providers", "shop_with"]
