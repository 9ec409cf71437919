"""A non-blocking message strip for errors and warnings (instead of modal boxes or the terminal)."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

_STYLES = {
    "error": "background:#7a1f1f; color:white;",
    "warning": "background:#7a5a12; color:white;",
    "info": "background:#1f4a7a; color:white;",
}


class MessageBar(QWidget):
    """Hidden until show_message(); an optional action button (e.g. 'Use test pattern') and a close
    button. A newer message replaces the shown one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = QPushButton()
        self.action.hide()
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(close)
        self._callback: Callable[[], None] | None = None
        self.action.clicked.connect(self._act)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "error", action: str = "",
                     callback: Callable[[], None] | None = None) -> None:
        self.level = level
        self.setStyleSheet(_STYLES.get(level, _STYLES["info"]) + " QPushButton { color: white; }")
        self.label.setText(text)
        self._callback = callback
        self.action.setText(action)
        self.action.setVisible(bool(action and callback))
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def _act(self) -> None:
        cb = self._callback
        self.hide()
        if cb is not None:
            cb()
