"""A widget that paints the newest frame, scaled to fit with its aspect ratio kept (letterboxed)."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget


def fit_rect(image: QSize, area: QSize) -> QRect:
    """The largest rectangle of image's aspect ratio centred in area (both in widget pixels)."""
    if image.width() <= 0 or image.height() <= 0 or area.width() <= 0 or area.height() <= 0:
        return QRect(0, 0, 0, 0)
    scale = min(area.width() / image.width(), area.height() / image.height())
    w, h = max(1, round(image.width() * scale)), max(1, round(image.height() * scale))
    return QRect((area.width() - w) // 2, (area.height() - h) // 2, w, h)


class VideoView(QWidget):
    """Shows one image. set_image() is called in the GUI thread with an owned QImage (see bridge.py);
    the QPixmap is made here, in the GUI thread, as Qt requires. A placeholder text is shown while
    there is no image (e.g. 'No camera found …'); an optional one-line overlay sits in the bottom-left."""

    def __init__(self, parent: QWidget | None = None, placeholder: str = "") -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 90)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._pixmap: QPixmap | None = None
        self.placeholder = placeholder
        self.overlay_text = ""
        self.frames_shown = 0

    def sizeHint(self) -> QSize:
        return QSize(640, 400)

    def set_image(self, image: QImage) -> None:
        self._image = image
        self._pixmap = QPixmap.fromImage(image)
        self.frames_shown += 1
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        self._image = self._pixmap = None
        if placeholder is not None:
            self.placeholder = placeholder
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        if self._pixmap is None:
            self.update()

    def set_overlay(self, text: str) -> None:
        if text != self.overlay_text:
            self.overlay_text = text
            self.update()

    def shown_image(self) -> QImage | None:
        """The QImage currently painted (tests read its pixels)."""
        return self._image

    def image_rect(self) -> QRect:
        """Where the image is painted, in widget pixels."""
        if self._pixmap is None:
            return QRect()
        return fit_rect(self._pixmap.size(), self.size())

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(18, 18, 18))
        if self._pixmap is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawPixmap(self.image_rect(), self._pixmap)
        elif self.placeholder:
            p.setPen(QColor(210, 210, 210))
            f = QFont(self.font())
            f.setPointSizeF(max(10.0, f.pointSizeF() * 1.2))
            p.setFont(f)
            p.drawText(self.rect().adjusted(16, 16, -16, -16),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        if self.overlay_text and self._pixmap is not None:
            r = self.image_rect()
            fm = p.fontMetrics()
            box = fm.boundingRect(QRect(0, 0, max(40, r.width() - 16), 200),
                                  Qt.TextFlag.TextWordWrap, self.overlay_text).adjusted(-6, -4, 6, 4)
            box.moveBottomLeft(r.bottomLeft() + QPoint(8, -8))
            p.fillRect(box, QColor(0, 0, 0, 150))
            p.setPen(QColor(240, 240, 240))
            p.drawText(box.adjusted(6, 4, -6, -4), Qt.TextFlag.TextWordWrap, self.overlay_text)
        p.end()
