"""asyncio front-end: blocking calls run in worker threads, a watch is pumped by a thread into a queue.

Kept as a thin wrapper over Store so the sync and async paths share every retry and decode rule.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any

from .lease import Lease
from .store import Store
from .types import KV, Compare, Member, Op, Status, TxnResult, WatchBatch
from .watch import Watch

_END = object()


class AsyncWatch:
    """`async for batch in astore.watch(...)`; aclose()/close() (or leaving `async with`) stops the watch.

    A daemon thread iterates the blocking Watch and hands batches over through a bounded asyncio.Queue, so a
    slow consumer slows the reader instead of growing memory.
    """

    def __init__(self, watch: Watch, maxsize: int = 64) -> None:
        self.watch = watch
        self._maxsize = maxsize
        self._queue: asyncio.Queue[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._done = False

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> WatchBatch:
        if self._done:
            raise StopAsyncIteration
        if self._queue is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue(self._maxsize)
            self._thread = threading.Thread(target=self._pump, daemon=True, name="store-async-watch")
            self._thread.start()
        item = await self._queue.get()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._done = True
        self.watch.close()

    def __del__(self) -> None:
        self.watch.close()

    @property
    def revision(self) -> int:
        return self.watch.revision

    def _pump(self) -> None:
        try:
            for batch in self.watch:
                if not self._hand_over(batch):
                    return
            self._hand_over(_END)
        except BaseException as exc:  # noqa: BLE001 - delivered to the consumer, raised there
            self._hand_over(exc)

    def _hand_over(self, item: object) -> bool:
        """Block until the consumer's queue takes `item`; False if the watch closed or the loop is gone."""
        assert self._loop is not None and self._queue is not None
        try:
            fut = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        except RuntimeError:  # event loop closed
            self.watch.close()
            return False
        while True:
            try:
                fut.result(timeout=0.2)
                return True
            except concurrent.futures.TimeoutError:
                if self.watch.closed:
                    fut.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                self.watch.close()
                return False


class AsyncStore:
    """Async wrappers over a Store (each call runs in a worker thread via asyncio.to_thread)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def prefix(self) -> str:
        return self.store.prefix

    async def get(self, key: str) -> KV | None:
        return await asyncio.to_thread(self.store.get, key)

    async def get_prefix(self, key_prefix: str = "", page_size: int = 1000) -> tuple[list[KV], int]:
        return await asyncio.to_thread(self.store.get_prefix, key_prefix, page_size)

    async def put(self, key: str, value: str, lease: int | None = None) -> int:
        return await asyncio.to_thread(self.store.put, key, value, lease)

    async def delete(self, key: str) -> int:
        return await asyncio.to_thread(self.store.delete, key)

    async def delete_prefix(self, key_prefix: str) -> int:
        return await asyncio.to_thread(self.store.delete_prefix, key_prefix)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        return await asyncio.to_thread(self.store.txn, compares, success, failure)

    async def txn_batches(self, ops: Sequence[Op], compares: Sequence[Compare] = ()) -> list[TxnResult]:
        return await asyncio.to_thread(self.store.txn_batches, ops, compares)

    async def lease_grant(self, ttl: int) -> Lease:
        return await asyncio.to_thread(self.store.lease_grant, ttl)

    async def compact(self, revision: int, physical: bool = False) -> None:
        await asyncio.to_thread(self.store.compact, revision, physical)

    async def revision(self) -> int:
        return await asyncio.to_thread(self.store.revision)

    async def status(self) -> Status:
        return await asyncio.to_thread(self.store.status)

    async def members(self) -> list[Member]:
        return await asyncio.to_thread(self.store.members)

    def watch(self, key_prefix: str = "", start_revision: int = 0,
              progress_notify: bool = True) -> AsyncWatch:
        return AsyncWatch(self.store.watch(key_prefix, start_revision, progress_notify))

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)
