"""Record events leave only with the commit that made their change (db/announcements.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from db.announcements import RecordEvent, announce, set_publisher


@pytest.fixture
def published():
    sent: list[RecordEvent] = []
    set_publisher(sent.append)
    yield sent
    from actions.record_events import emit_record_event

    set_publisher(emit_record_event)


@pytest.fixture
def session():
    with Session(create_engine("sqlite://")) as session:
        session.execute(text("select 1"))
        yield session


def event(record_id: str) -> RecordEvent:
    return RecordEvent(record="credit-memo", verb="created", record_id=record_id)


def test_an_announcement_is_published_once_its_transaction_commits(session, published):
    announce(session, lambda: event("a"))
    assert published == []
    session.commit()
    assert [e.record_id for e in published] == ["a"]
    session.execute(text("select 1"))
    session.commit()
    assert [e.record_id for e in published] == ["a"]  # not again with the next transaction


@pytest.mark.parametrize("end", ["rollback", "close"])
def test_a_change_that_did_not_commit_is_never_told(session, published, end):
    announce(session, lambda: event("gone"))
    getattr(session, end)()
    session.execute(text("select 1"))
    session.commit()
    assert published == []


def test_a_failing_event_never_undoes_the_change_it_tells_of(session, published):
    announce(session, lambda: 1 / 0)
    announce(session, lambda: event("kept"))
    session.commit()  # does not raise
    assert [e.record_id for e in published] == ["kept"]


def test_the_event_id_is_what_it_tells():
    assert event("a").id == event("a").id != event("b").id
    assert RecordEvent(record="refund", verb="pending", record_id="x").id != \
        RecordEvent(record="refund", verb="processed", record_id="x").id
