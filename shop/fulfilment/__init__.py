"""Fulfilment backends (what a subscription grants), one module each."""

from .base import Access as Access
from .base import Adoptable as Adoptable
from .base import Fulfilment as Fulfilment
from .base import FulfilmentFailed as FulfilmentFailed
from .none import NoFulfilment as NoFulfilment
