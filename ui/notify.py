"""Thread → GUI notification without Qt calls on worker threads: Waker, CallQueue, Listeners.

- A worker wakes the GUI thread by writing one byte to a socket pair (`Waker`); a QSocketNotifier in
  the GUI thread turns it into a callback there. Workers never touch a QObject, an event or PySide's
  cross-thread signal path (PySide6 has had crashes there, e.g. PYSIDE-3124 since 6.8), and at most
  one byte is in flight, so a busy worker cannot flood the GUI's event queue.
- `CallQueue.call_soon(fn, ...)` runs fn in the GUI thread, in order, none dropped.
- `Listeners` are plain-Python signals for the GUI thread. They hold bound methods weakly, so Qt
  wrappers do not end up in reference cycles: a cycle is freed by Python's cycle collector, which runs
  on whichever thread allocates, and a QObject deleted from a worker thread crashes Qt (seen here: a
  collected bridge deleted its QSocketNotifier from a capture thread).

(The "Fatal Python error: none_dealloc / bool_dealloc" aborts met while building this were PySide6
6.12 itself under Python 3.11 — it drops a reference to None/True/False on every call, threads or
not; pyproject.toml excludes it and ui.app refuses to start with it.)
"""
from __future__ import annotations

import inspect
import logging
import socket
import threading
import weakref
from functools import partial
from collections import deque
from typing import Any, Callable

from PySide6.QtCore import QObject, QSocketNotifier

log = logging.getLogger(__name__)


class _Strong:
    """A strong reference with WeakMethod's call interface."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self) -> Callable[..., Any]:
        return self.fn


def _close_all(socks: tuple[socket.socket, ...], *_: Any) -> None:
    for s in socks:
        s.close()


class Listeners:
    """A signal without Qt: connect(fn), emit(*args) calls every fn in the emitting thread, in order.
    A listener that raises is logged; the others still run.

    Bound methods are held weakly (as Qt does for a receiver's slots): a QObject's wrapper is not kept
    alive, or tied into a reference cycle, by what it listens to. A cycle of Qt wrappers is freed by
    Python's cycle collector, which may run on any thread, and a QObject deleted from a worker thread
    crashes Qt."""

    def __init__(self) -> None:
        self._fns: list[Callable[[], Callable[..., Any] | None]] = []

    def connect(self, fn: Callable[..., Any]) -> None:
        self._fns.append(weakref.WeakMethod(fn) if inspect.ismethod(fn) else _Strong(fn))

    def emit(self, *args: Any) -> None:
        for ref in list(self._fns):
            fn = ref()
            if fn is None:  # its object is gone
                self._fns.remove(ref)
                continue
            try:
                fn(*args)
            except Exception:
                log.exception("listener %r failed", fn)


class Waker(QObject):
    """`wake()` from any thread; `woken` listeners run later in the thread that made the Waker."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.woken = Listeners()
        self._recv, self._send = socket.socketpair()
        self._recv.setblocking(False)
        self._send.setblocking(False)
        self._lock = threading.Lock()
        self._armed = False
        self._notifier = QSocketNotifier(self._recv.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._ready)
        # the sockets close only once Qt has let go of the notifier: closing them first (Python may free
        # this wrapper before Qt deletes the notifier) leaves Qt polling a dead or reused descriptor
        self._notifier.destroyed.connect(partial(_close_all, (self._recv, self._send)))

    def wake(self) -> None:
        with self._lock:
            if self._armed:
                return  # a wake-up is already on its way
            self._armed = True
        try:
            self._send.send(b"\0")
        except OSError:  # closed at shutdown, or the (impossible) full buffer: nothing to wake
            with self._lock:
                self._armed = False

    def _ready(self) -> None:
        try:
            self._recv.recv(64)
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            self._armed = False  # before the listeners run: a wake during their work is not lost
        self.woken.emit()



class CallQueue(QObject):
    """`call_soon(fn, *args)` from any thread runs fn(*args) in the GUI thread, in order, none dropped."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self.waker = Waker(self)
        self.waker.woken.connect(self.drain)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self._calls.append((fn, args))  # deque.append is atomic
        self.waker.wake()

    def drain(self) -> None:
        while self._calls:
            fn, args = self._calls.popleft()
            try:
                fn(*args)
            except Exception:  # one broken listener must not starve the others
                log.exception("GUI callback %r failed", fn)
