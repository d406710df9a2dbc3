"""Which cancelled runs the executor schedules again (runtime/executor/resumptions.py)."""

from __future__ import annotations

from prefect.states import Cancelled, Cancelling, Completed, Pending, Running, Scheduled

from runtime.executor.resumptions import cancelled_before_it_started

SLOT_LOST = Cancelled(message="Deployment concurrency slot lost during provisioning - no slots available to continue execution")


def test_a_run_the_server_cancelled_for_a_lost_slot_before_it_ran_is_scheduled_again():
    assert cancelled_before_it_started([Scheduled(), Pending(), SLOT_LOST])


def test_a_resumed_run_counts_only_its_last_attempt():
    assert cancelled_before_it_started([Scheduled(), Pending(), Running(), Scheduled(), Pending(), SLOT_LOST])


def test_a_run_that_had_started_is_not_run_again():
    assert not cancelled_before_it_started([Scheduled(), Pending(), Running(), SLOT_LOST])


def test_a_cancellation_a_person_asked_for_stands():
    assert not cancelled_before_it_started([Scheduled(), Pending(), Cancelling(), Cancelled(message="cancelled by a person")])
    assert not cancelled_before_it_started([Scheduled(), Pending(), Cancelled(message="cancelled by a person")])
    assert not cancelled_before_it_started([Scheduled(), Pending(), Cancelling(), SLOT_LOST])


def test_other_endings_are_left_alone():
    assert not cancelled_before_it_started([Scheduled(), Pending(), Running(), Completed()])
    assert not cancelled_before_it_started([])
