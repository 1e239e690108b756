"""security/request_id.py: the ids of requests that bring none."""

from __future__ import annotations

import os
import uuid

from app.security.request_id import new_request_id, request_id_from


def test_a_new_request_id_is_a_version_4_uuid():
    """RFC 9562 §5.4: version 4, the RFC variant, in the canonical text form."""
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, request_id)


def test_forked_workers_do_not_repeat_each_others_ids():
    """A server forks its workers after the parent drew ids: each worker draws its own."""
    new_request_id()
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(writing, new_request_id().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    from_child = os.read(reading, 64).decode()
    os.close(reading)
    assert uuid.UUID(from_child).version == 4
    assert from_child != new_request_id()


def test_a_well_formed_incoming_id_is_kept_and_anything_else_replaced():
    assert request_id_from("trace-abcdef12") == "trace-abcdef12"
    assert uuid.UUID(request_id_from("bad id; with spaces")).version == 4
    assert uuid.UUID(request_id_from("")).version == 4
