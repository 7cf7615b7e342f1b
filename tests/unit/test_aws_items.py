"""Release items on DynamoDB: where their history came from, readable from items written before releases were
polled."""

from __future__ import annotations

from ghingest.adapters.aws.items import release_item, stored_release
from ghingest.adapters.aws.table import from_item
from ghingest.app.samples import release_payload
from ghingest.core.releases import rebuild, release_change


def test_a_release_item_keeps_its_sources_and_one_written_before_polling_reads_as_webhook() -> None:
    published = release_payload(release_id=7)
    edited = release_payload(action="edited", release_id=7, body="edited on GitHub")
    polled = {"action": "edited", "release": edited["release"], "repository": edited["repository"]}
    record = rebuild(
        [
            release_change(delivery_id="hook-1", seq=1, received_at=1.0, payload=published),
            release_change(delivery_id="poll:7:abc", seq=2, received_at=2.0, payload=polled),
        ]
    )
    attrs = from_item(release_item(record, first_seen_at=1.0, updated_at=2.0, version=1))
    assert attrs["sources"] == ["poll", "webhook"]
    assert stored_release(attrs).sources == {"webhook", "poll"}
    assert stored_release(attrs, with_history=False).sources == {"webhook", "poll"}
    del attrs["sources"]
    older = stored_release(attrs)
    assert older.sources == {"webhook"}
    assert older.record == record
