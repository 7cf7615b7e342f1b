"""The store queries behind the dashboard, on a real SQLite file: search strategies agree, chart and typeahead."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghingest.adapters.sql import queries
from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.ports import ReleaseQuery

COUNT = 1500  # more than queries.SEARCH_MANY_MATCHES, so that common words take the index-walking path


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteDatabase]:
    path: Path = tmp_path_factory.mktemp("queries") / "q.db"
    db = SqliteDatabase(f"sqlite:///{path}")
    db.upgrade()
    conn = sqlite3.connect(path)
    rows = []
    for i in range(COUNT):
        stamp = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
        body = "common words here" + (" rare" if i % 500 == 0 else "") + (" tenth" if i % 10 == 0 else "")
        rows.append(
            (i + 1, f"org{i % 3}/repo{i % 7}", f"v{i}", f"Release {i}", "octocat", None, False, i % 4 == 0,
             stamp, stamp, None, body, "published" if i % 5 else "deleted", stamp, stamp, i, 1.0, 1.0)
        )  # fmt: skip
    conn.executemany(
        "INSERT INTO releases (id, repository, tag, name, author_login, author_avatar_url, draft, prerelease,"
        " created_at, published_at, html_url, body, state, sort_at, content_ts, content_seq, first_seen_at,"
        " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.commit()
    conn.close()
    yield db
    asyncio.run(db.close())


def _walk(db: SqliteDatabase, query: ReleaseQuery) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        page = asyncio.run(db.reads.list_releases(dataclasses.replace(query, cursor=cursor)))
        ids += [v.record.release_id for v in page.items]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def _expected(db: SqliteDatabase, query: ReleaseQuery) -> list[int]:
    """The same query the plain way (SQLite drives it by the matching ids), without pagination."""
    full = dataclasses.replace(query, limit=10_000)
    statement = queries.releases_matching(full, many_matches=False)
    return [row._mapping["id"] for row in db.reader.run_sync(lambda conn: conn.execute(statement).fetchall())]


@pytest.mark.parametrize(
    "query",
    [
        ReleaseQuery(search="common"),
        ReleaseQuery(search="comm"),
        ReleaseQuery(search="tenth", state="published", limit=37),
        ReleaseQuery(search="common words", prerelease=True, since="2024-03-01", until="2024-09-01"),
        ReleaseQuery(search="rare"),
        ReleaseQuery(search="common", repository="org1/repo4"),
        ReleaseQuery(search="nothing-matches-this"),
    ],
    ids=["many", "prefix", "tenth+state", "many+filters", "few", "many+repo", "none"],
)
def test_search_pages_match_the_plain_query_whatever_the_strategy(
    database: SqliteDatabase, query: ReleaseQuery
) -> None:
    walked = _walk(database, query)
    assert walked == _expected(database, query)
    assert len(walked) == len(set(walked))


def test_repositories_for_the_typeahead(database: SqliteDatabase) -> None:
    assert asyncio.run(database.reads.list_repositories("org1/")) == ["org1/repo0", "org1/repo1", "org1/repo2",
                                                                       "org1/repo3", "org1/repo4", "org1/repo5",
                                                                       "org1/repo6"]  # fmt: skip
    assert asyncio.run(database.reads.list_repositories("REPO6", limit=2)) == ["org0/repo6", "org1/repo6"]
    assert asyncio.run(database.reads.list_repositories("100%_")) == []


def test_releases_per_day_for_the_chart(database: SqliteDatabase) -> None:
    newest = asyncio.run(database.reads.newest_release_at())
    assert newest is not None
    assert newest.startswith("2024-12-")
    per_day = asyncio.run(database.reads.count_releases_by_day(since="2024-12-01"))
    assert sum(per_day.values()) == COUNT // 12
    one_repo = asyncio.run(database.reads.count_releases_by_day(since="2024-01-01", repository="org0/repo0"))
    assert sum(one_repo.values()) == len([i for i in range(COUNT) if i % 3 == 0 and i % 7 == 0])
