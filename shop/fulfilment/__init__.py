"""Fulfilment backends (what a subscription grants), one module each."""

from .base import Fulfilment as Fulfilment
from .none import NoFulfilment as NoFulfilment
