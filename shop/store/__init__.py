"""PostgreSQL access: the pool, the schema, and one module of queries per aggregate."""

from .embedded import open_embedded_postgres as open_embedded_postgres
from .pool import Connection as Connection
from .pool import Store as Store
from .pool import open_store as open_store
from .schema import apply_schema as apply_schema
