"""Fulfilment backends (what a subscription grants), one module each."""
