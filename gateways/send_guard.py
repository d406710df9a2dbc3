"""The last check before a call that may move money: does whoever runs this operation
still hold it?

An executor holds its runs by writing a heartbeat to the store; once the beats stop for
the orphan grace period, another executor resumes the run. An executor that is alive but
cut off from the store looks exactly like a dead one, so it must stop sending before the
others may take over, or the resumed run and the cut-off one could both send the same
refund to a gateway that does not deduplicate by idempotency key. The executor sets a
guard for its runs (:func:`guarded_by`); :func:`ensure_may_send` raises
:class:`SendingSuspended` when it says no, before any request leaves.

``SendingSuspended`` is a ``ConnectionError``: an infrastructure fault, so the run is
resumed rather than failed, and the resumed run asks the gateway by key about the
refund or capture it had reserved before it sends anything.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

# Answers None when sending is allowed, else why not.
SendGuard = Callable[[], str | None]

_guard: contextvars.ContextVar[SendGuard | None] = contextvars.ContextVar("om_send_guard", default=None)


class SendingSuspended(ConnectionError):
    """This process may no longer act for the operation: nothing was sent."""


def set_guard(guard: SendGuard | None) -> None:
    """Guard every call made in the current context (and contexts copied from it)."""
    _guard.set(guard)


@contextlib.contextmanager
def guarded_by(guard: SendGuard | None) -> Iterator[None]:
    token = _guard.set(guard)
    try:
        yield
    finally:
        _guard.reset(token)


def ensure_may_send() -> None:
    """Raise :class:`SendingSuspended` if the current context's guard refuses.

    Example:
        ```python
        from gateways.send_guard import SendingSuspended, ensure_may_send, guarded_by

        with guarded_by(lambda: "the executor lost the store 9 s ago"):
            try:
                ensure_may_send()
            except SendingSuspended as exc:
                print(exc)  # sending suspended: the executor lost the store 9 s ago
        ```
    """
    guard = _guard.get()
    if guard is not None and (reason := guard()) is not None:
        raise SendingSuspended(f"sending suspended: {reason}")
