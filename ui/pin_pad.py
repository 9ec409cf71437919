"""A touch-friendly PIN pad page for the kiosk (no dialogs, no window controls).

Mode 'set' (first run, or changing the PIN) asks twice; mode 'unlock' checks the PIN. Hashing and the
lockout file run on a BackgroundTasks worker; the pad shows attempts left and the remaining lockout.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ui.notify import Listeners
from ui.pin import PinCheck, PinStore, check_pin_format
from ui.tasks import BackgroundTasks


class PinPad(QWidget):
    def __init__(self, store: PinStore, tasks: BackgroundTasks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.unlocked = Listeners()
        self.cancelled = Listeners()
        self.store = store
        self.tasks = tasks
        self.mode = "unlock"
        self._first = ""
        self.busy = False
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 2.0)
        self.title = QLabel()
        self.title.setFont(big)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.entry = QLineEdit()
        self.entry.setEchoMode(QLineEdit.EchoMode.Password)
        self.entry.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.entry.setFont(big)
        self.entry.setMaxLength(12)
        self.entry.returnPressed.connect(self.submit)
        grid = QGridLayout()
        for i, key in enumerate(["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"]):
            b = QPushButton(key)
            b.setFont(big)
            b.setMinimumSize(96, 72)
            b.clicked.connect(lambda _=False, k=key: self._key(k))
            grid.addWidget(b, i // 3, i % 3)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self._cancel)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        for w in (self.title, self.message, self.entry):
            lay.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addLayout(grid)
        lay.addWidget(self.cancel, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addStretch(1)
        self.entry.setMinimumWidth(320)
        self._countdown = QTimer(self, interval=1000)
        self._countdown.timeout.connect(self._tick)
        self._locked_until = 0.0

    def begin(self, mode: str, message: str = "", can_cancel: bool = True) -> None:
        """mode 'set' or 'unlock'; a first-run 'set' cannot be cancelled."""
        self.mode, self._first = mode, ""
        self.title.setText("Set the administrator PIN" if mode == "set" else "Administrator PIN")
        if not self.locked():
            self.message.setText(message or ("4 to 12 digits" if mode == "set" else ""))
        self.cancel.setVisible(can_cancel)
        self.entry.clear()
        self.entry.setFocus()

    def _key(self, key: str) -> None:
        if key == "⌫":
            self.entry.backspace()
        elif key == "OK":
            self.submit()
        else:
            self.entry.insert(key)

    def _cancel(self) -> None:
        self.entry.clear()
        self.cancelled.emit()

    def submit(self) -> None:
        pin = self.entry.text()
        self.entry.clear()
        if self.busy:
            return
        if self.mode == "set":
            self._submit_set(pin)
            return
        self.busy = True
        self.tasks.submit(lambda: self.store.check(pin), self._checked, self._failed)

    def _submit_set(self, pin: str) -> None:
        try:
            check_pin_format(pin)
        except Exception as exc:
            self.message.setText(str(exc))
            return
        if not self._first:
            self._first = pin
            self.message.setText("Type the same PIN again")
            return
        if pin != self._first:
            self._first = ""
            self.message.setText("The two PINs differ — start again")
            return
        self.busy = True
        self.tasks.submit(lambda: self.store.set_pin(pin), lambda _: self._was_set(), self._failed)

    def _was_set(self) -> None:
        self.busy = False
        self.message.setText("PIN set")
        self.unlocked.emit()

    def _checked(self, result: PinCheck) -> None:
        self.busy = False
        if result.ok:
            self.message.setText("")
            self.unlocked.emit()
        elif result.locked_for_s > 0:
            self.show_locked(result.locked_for_s)
        else:
            self.message.setText(f"Wrong PIN — {result.attempts_left} attempt(s) left before the panel locks")

    def show_locked(self, seconds: float) -> None:
        self._locked_until = time.monotonic() + seconds
        self._tick()
        self._countdown.start()

    def _tick(self) -> None:
        left = self._locked_until - time.monotonic()
        if left <= 0:
            self._countdown.stop()
            self.message.setText("You may try again")
            return
        m, s = divmod(int(left + 0.999), 60)
        self.message.setText(f"Too many wrong PINs — the admin panel is locked for {m}:{s:02d}")

    def locked(self) -> bool:
        return self._countdown.isActive()

    def _failed(self, message: str) -> None:
        self.busy = False
        self.message.setText(message)
