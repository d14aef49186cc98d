"""shop: a Telegram storefront for subscriptions and packages, built on trio actors."""

__version__ = "0.1.0"
