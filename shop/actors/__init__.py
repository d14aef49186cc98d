"""Actors: the runtime and one module per kind of actor."""

from .runtime import Behaviour as Behaviour
from .runtime import Kind as Kind
from .runtime import KindStats as KindStats
from .runtime import Registry as Registry
from .runtime import open_registry as open_registry
