"""A Redis database of a test's own on the machine's Redis, empty before and after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def flushed_redis_database(url: str) -> Iterator[str]:
    """Yield ``url`` once its database is empty, and empty it again afterwards; skip the
    test when no Redis answers. Redis streams outlive a Prefect database: each test that
    runs Prefect on Redis takes a database number of its own."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis answers at 127.0.0.1:6379")
    client.flushdb()
    yield url
    client.flushdb()
