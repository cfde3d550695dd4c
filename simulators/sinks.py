"""Where simulated messages go: the broker (paho for live runs, the wire publisher for bounded
fast ones), or a file of ``topic<TAB>payload`` lines (``--output``) to look at or diff."""

from __future__ import annotations

import sys
from typing import IO, Protocol

from simulators.basic import Publisher


class Sink(Protocol):
    def publish(self, topic: str, payload: bytes) -> None: ...

    def flush(self) -> None: ...

    def backlog(self) -> int: ...

    def wait_acked(self, timeout: float = 60.0) -> bool: ...

    def close(self) -> None: ...


class PahoSink:
    """paho reconnects and resends what was in flight: right for runs that go on for days."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def publish(self, topic: str, payload: bytes) -> None:
        self.publisher.publish(topic, payload)

    def flush(self) -> None:
        pass  # paho's network thread writes as it goes

    def backlog(self) -> int:
        return self.publisher.backlog()

    def wait_acked(self, timeout: float = 60.0) -> bool:
        return self.publisher.wait_acked(timeout)

    def close(self) -> None:
        self.publisher.close()


class FileSink:
    def __init__(self, path: str) -> None:
        self._own = path != "-"
        self._out: IO[bytes] = open(path, "wb") if self._own else sys.stdout.buffer  # noqa: SIM115

    def publish(self, topic: str, payload: bytes) -> None:
        self._out.write(topic.encode() + b"\t" + payload + b"\n")

    def flush(self) -> None:
        self._out.flush()

    def backlog(self) -> int:
        return 0

    def wait_acked(self, timeout: float = 60.0) -> bool:
        return True

    def close(self) -> None:
        self._out.flush()
        if self._own:
            self._out.close()
