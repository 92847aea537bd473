"""The engine's clock. Tests and the conformance kit inject their own to drive timeout triggers."""

import threading
import time


class SystemClock:
    def __init__(self, wake: threading.Event | None = None) -> None:
        self._wake = wake
        """Set when the run is asked to stop: a sleep ends early rather than hold the stop up."""

    # The functions themselves, not methods calling them: the recorder asks for the time twice per row.
    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        if self._wake is None:
            time.sleep(seconds)
        else:
            self._wake.wait(seconds)
