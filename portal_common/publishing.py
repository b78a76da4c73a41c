"""Producers kept from one message to the next.

Every message nameko publishes (an RPC request, an RPC reply, an event it dispatches) gets its
producer from ``nameko.amqp.publish.get_producer``. That builds a kombu ``Connection`` for each
message only to find the pool it keys (parsing the URI and hashing its options), takes a pooled
connection, opens the producer on its channel again, and gives the channel back after the one
message. It was about a tenth of the gateway's CPU for each request.

``held_producer`` has the same signature and meaning, but keys its pools by the arguments
once, and a producer keeps its connection and channel while it rests in the pool. At most
``kombu.pools.get_limit()`` producers exist per key (10), as with kombu's pools, and a caller
beyond them waits for one. A producer whose ``with`` block raised anything, a lost connection
or a returned message alike, is closed and dropped rather than reused, so no frame it left
unread (a confirm that came after a returned message) is read by the next message.
``install()`` puts ``held_producer`` in nameko's place; the services and the gateway call it
as they start.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import kombu.pools
import nameko.amqp.publish
from kombu import Connection, Producer
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS


class ProducerPool:
    """Producers for one broker and one set of connection options, each on its own connection."""

    def __init__(self, amqp_uri: str, transport_options: dict, ssl: Any, login_method: str | None,
                 limit: int):
        self._options = {"transport_options": dict(transport_options), "ssl": ssl, "login_method": login_method}
        self._amqp_uri = amqp_uri
        self._idle: list[Producer] = []
        self._slots = threading.BoundedSemaphore(limit) if limit else None
        self.created = 0

    @contextmanager
    def producer(self) -> Iterator[Producer]:
        if self._slots is not None:
            self._slots.acquire()
        try:
            producer = self._idle.pop() if self._idle else self._new()
            try:
                yield producer
            except BaseException:
                _close(producer)
                raise
            self._idle.append(producer)
        finally:
            if self._slots is not None:
                self._slots.release()

    def _new(self) -> Producer:
        connection = Connection(self._amqp_uri, **self._options)
        self.created += 1
        return Producer(connection)

    def close(self) -> None:
        while self._idle:
            _close(self._idle.pop())


def _close(producer: Producer) -> None:
    connection = producer.connection
    if connection is not None:
        with suppress(Exception):  # already gone with the broker: nothing more to free
            connection.close()


_pools: dict[tuple, ProducerPool] = {}
_pools_lock = threading.Lock()


def _key(amqp_uri: str, confirms: bool, ssl: Any, login_method: str | None, transport_options: dict) -> tuple:
    return (amqp_uri, bool(confirms), repr(ssl), login_method, repr(sorted(transport_options.items())))


def pool_for(amqp_uri: str, confirms: bool = True, ssl: Any = None, login_method: str | None = None,
             transport_options: dict | None = None) -> ProducerPool:
    """The pool for these arguments, made on first use."""
    options = dict(DEFAULT_TRANSPORT_OPTIONS if transport_options is None else transport_options)
    options["confirm_publish"] = confirms
    key = _key(amqp_uri, confirms, ssl, login_method, options)
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = ProducerPool(amqp_uri, options, ssl, login_method, kombu.pools.get_limit())
    return pool


@contextmanager
def held_producer(amqp_uri: str, confirms: bool = True, ssl: Any = None, login_method: str | None = None,
                  transport_options: dict | None = None) -> Iterator[Producer]:
    """``nameko.amqp.publish.get_producer``, with the producer kept for the next message."""
    with pool_for(amqp_uri, confirms, ssl, login_method, transport_options).producer() as producer:
        yield producer


def install() -> None:
    """Make nameko's publishers take their producers from ``held_producer``."""
    nameko.amqp.publish.get_producer = held_producer


def close_all() -> None:
    """Close every resting producer's connection (tests, and a process that stops)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
