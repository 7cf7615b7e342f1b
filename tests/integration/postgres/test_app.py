"""The application served on PostgreSQL end to end, `ghingest db upgrade` against a postgresql:// URL, and the
migrated PostgreSQL schema against `ghingest.adapters.sql.schema`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from ghingest.adapters.sql import migrate
from ghingest.adapters.sql.schema import metadata
from ghingest.app.runtime import Runtime
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.postgres_support import create_database, database_url, drop_database

GHINGEST = str(Path(sys.executable).with_name("ghingest"))


def test_a_signed_webhook_is_processed_and_shown_on_postgresql(
    make_settings: Callable[..., Any], postgres_url: str
) -> None:
    settings = make_settings(database_url=postgres_url, database_pool_size=4)
    runtime = Runtime.build(settings)
    assert runtime.backend.name == "postgres"
    with (
        ThreadedServer(runtime) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api,
    ):
        assert api.get("/readyz").status_code == 200
        request = signed(release(release_id=4242, tag="v9.9.9"), delivery_id="pg-e2e-1")
        assert post_webhook(api, request).status_code == 202
        assert post_webhook(api, request).json()["duplicate"] is True

        def listed() -> Any:
            items = api.get("/api/releases").json()["items"]
            return [item for item in items if item["id"] == 4242]

        [shown] = wait_until(listed)
        assert shown["tag"] == "v9.9.9"
        delivery = api.get("/api/deliveries/pg-e2e-1").json()
        assert delivery["status"] == "processed"
        assert [s["count"] for s in delivery["sightings"]] == [1]
        searched = api.get("/api/releases", params={"search": "v9.9"}).json()["items"]
        assert [item["id"] for item in searched] == [4242]


def test_db_upgrade_migrates_a_postgresql_database(tmp_path: Path) -> None:
    name = create_database()  # from the migrated template: upgrading again is a no-op; start from nothing
    drop_database(name)
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")}
        env |= {"GHINGEST_DATABASE_URL": url, "GHINGEST_DATA_DIR": str(tmp_path)}
        result = subprocess.run(
            [GHINGEST, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert migrate.current_revision(url) == migrate.head_revision()
    finally:
        drop_database(name)


def test_processes_starting_at_once_apply_the_migrations_once(tmp_path: Path) -> None:
    """N receivers migrate first when they start: on an empty database, started together, all succeed (one applies
    the revisions under the migration lock; the others wait and find nothing to do)."""
    name = create_database()
    drop_database(name)
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")}
        env |= {"GHINGEST_DATABASE_URL": url, "GHINGEST_DATA_DIR": str(tmp_path)}
        upgrades = [
            subprocess.Popen([GHINGEST, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(3)
        ]
        outputs = [process.communicate(timeout=120)[0].decode(errors="replace") for process in upgrades]
        assert [process.returncode for process in upgrades] == [0, 0, 0], outputs
        assert migrate.current_revision(url) == migrate.head_revision()
    finally:
        drop_database(name)


def test_the_postgresql_schema_matches_the_tables(postgres_url: str) -> None:
    engine = create_engine(migrate.sqlalchemy_url(postgres_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    # What only PostgreSQL has (migration 0010); the shared tables describe everything else exactly.
    assert sorted(_named(d) for d in diff) == [
        ("remove_column", "delivery_states", "claim"),
        ("remove_column", "forward_jobs", "lease_owner"),
        ("remove_column", "releases", "search"),
        ("remove_index", "releases", "ix_releases_repository_trgm"),
        ("remove_index", "releases", "ix_releases_search"),
    ]


def _named(difference: Any) -> tuple[str, ...]:
    if difference[0] == "remove_column":
        return (difference[0], difference[2], difference[3].name)
    if difference[0] == "remove_index":
        return (difference[0], difference[1].table.name, difference[1].name)
    return (str(difference),)
