"""Stages of a video on their own threads, linked by bounded queues.

A decoder thread feeds frames to the thread that detects and anonymizes them, and an
encoder thread writes the results, so decoding, anonymization and encoding overlap (the
decoders, numpy, torch and x264 release the GIL). Queues hold at most ``queue_size``
items, so memory stays bounded whatever the video's length. The first error in any
stage stops every stage; :meth:`StageThreads.finish` and :meth:`StageThreads.abort`
join the threads and re-raise it, so the caller fails the input as a whole. Signals are
handled in the main thread only (:mod:`sganon.core.interrupt`): an interruption there
stops and joins the stages (``abort(raise_error=False)``) and goes on as an interruption.

>>> stages = StageThreads(queue_size=2)
>>> written = []
>>> write = stages.consume(written.append)
>>> for item in stages.produce(iter(range(5))):
...     write(item * 10)
>>> stages.finish()
>>> written
[0, 10, 20, 30, 40]
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

#: Items in flight between two stages (frames: about 8 x 6 MB at 1080p).
QUEUE_SIZE = 8
DONE = object()  # end-of-stream marker
POLL_SECONDS = 0.1


class Stopped(Exception):
    """Raised inside a stage when another stage failed (not an error of its own)."""


class StageThreads:
    """Background stages that stop together.

    Args:
        queue_size: Largest number of items waiting between two stages.
    """

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.inputs: list[queue.Queue] = []  # queues of the consumer stages

    def produce(self, items: Iterable[Any]) -> Iterator[Any]:
        """Iterate ``items`` on a thread of its own; yields them here, in order."""
        channel: queue.Queue = queue.Queue(self.queue_size)

        def work() -> None:
            iterator = iter(items)
            try:
                for item in iterator:
                    self.put(channel, item)
                self.put(channel, DONE)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:  # a generator's cleanup runs on its own thread
                    close()

        self.start(work, "decode")

        def results() -> Iterator[Any]:
            while (item := self.get(channel)) is not DONE:
                yield item

        return results()

    def consume(self, handle: Callable[[Any], None]) -> Callable[[Any], None]:
        """Call ``handle(item)`` on a thread of its own for each item given to the returned function."""
        channel: queue.Queue = queue.Queue(self.queue_size)
        self.inputs.append(channel)

        def work() -> None:
            while (item := self.get(channel)) is not DONE:
                handle(item)

        self.start(work, "encode")
        return lambda item: self.put(channel, item)

    def finish(self) -> None:
        """End the consumers' input, wait for every stage and raise the first stage error."""
        try:
            for channel in self.inputs:
                self.put(channel, DONE)
        except Stopped:
            pass
        self.join()
        self.raise_error()

    def abort(self, raise_error: bool = True) -> None:
        """Stop every stage (after an error or an interruption here) and wait for them; raises
        a stage's own error if one caused the stop (unless ``raise_error`` is false)."""
        self.stop.set()
        self.join()
        if raise_error:
            self.raise_error()

    # ------------------------------------------------------------------ internals
    def start(self, work: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                work()
            except Stopped:
                pass
            except BaseException as error:  # handed to the caller's thread
                self.errors.append(error)
                self.stop.set()

        thread = threading.Thread(target=run, name=f"sganon-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def raise_error(self) -> None:
        if self.errors:
            raise self.errors[0]

    def put(self, channel: queue.Queue, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise Stopped()
            try:
                channel.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self, channel: queue.Queue) -> Any:
        while True:
            if self.stop.is_set():
                raise Stopped()
            try:
                return channel.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
