"""The PostgreSQL backend (the scale-out profile): every port on one database, through psycopg 3's async
connections and one `psycopg_pool.AsyncConnectionPool` per process (docs/adr/0014-postgresql-backend.md).

- `connection.PostgresResources`: the pool, the LISTEN connection and the wake-ups; errors → `StoreUnavailable`.
- `inbox`, `store` (write side), `reads`, `feed`, `forwarding` (queue and log), `sessions`: one port each.
- `backend.open_postgres_backend`: a `ghingest.ports.Backend` over one database URL.
"""

from ghingest.adapters.postgres.backend import open_postgres_backend
from ghingest.adapters.postgres.connection import PostgresResources

__all__ = ["PostgresResources", "open_postgres_backend"]
