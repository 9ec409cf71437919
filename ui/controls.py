"""The pipeline panel: a toggle per pipeline and its main settings, turned into a PipelineSpec."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget)

from vision_app.config import AppConfig
from vision_app.models import ModelStore
from vision_app.stages import TASKS

from ui.context import setting_list, setting_number
from ui.notify import Listeners
from ui.session import PipelineSpec

log = logging.getLogger(__name__)

OVERLAYS = ("color", "blur", "replace", "cutout")
PAINTING_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.webp)"


def task_available(task: str) -> bool:
    """True when the task's stage module is installed (a pipeline not yet in this build is greyed out)."""
    module = TASKS[task].split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _names(store: ModelStore | None, task: str, default: str) -> list[str]:
    names = store.names(task) if store is not None else []
    return names or [default]


class PipelineControls(QWidget):
    """Emits `changed` (debounced by 250 ms) whenever a toggle or setting changes."""

    def __init__(self, config: AppConfig, store: ModelStore | None, settings: QSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.changed = Listeners()
        self._debounce = QTimer(self, singleShot=True, interval=250)
        self._debounce.timeout.connect(lambda: self.changed.emit())
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)

        self.detect_box = self._group(lay, "Object detection", "detect")
        form = QFormLayout()
        self.det_model = self._combo(_names(store, "detect", config.detect.model), config.detect.model)
        self.det_conf = self._spin(config.detect.confidence)
        self.det_iou = self._spin(config.detect.iou)
        form.addRow("Model", self.det_model)
        form.addRow("Confidence", self.det_conf)
        form.addRow("NMS IoU", self.det_iou)
        self.detect_box.setLayout(form)

        self.face_box = self._group(lay, "Face recognition + liveness", "face")
        face_lay = QVBoxLayout(self.face_box)
        note = QLabel("Names come from the face gallery (Gallery… in the toolbar); "
                      "boxes show identity, similarity and liveness.")
        note.setWordWrap(True)
        face_lay.addWidget(note)

        self.segment_box = self._group(lay, "Segmentation", "segment")
        form = QFormLayout()
        self.seg_model = self._combo(_names(store, "segment", config.segment.model), config.segment.model)
        self.seg_overlay = self._combo(list(OVERLAYS), config.segment.overlay)
        self.seg_opacity = self._slider(config.segment.opacity)
        form.addRow("Model", self.seg_model)
        form.addRow("Overlay", self.seg_overlay)
        form.addRow("Opacity", self.seg_opacity)
        self.segment_box.setLayout(form)

        self.style_box = self._group(lay, "Style transfer", "style")
        form = QFormLayout()
        row = QHBoxLayout()
        self.style_choice = QComboBox()
        self.style_choice.setMinimumContentsLength(12)
        self.style_choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        fixed = [n for n in (store.names("style") if store is not None else []) if not n.startswith("magenta")]
        self.style_choice.addItem("(choose a painting)", "")
        for n in fixed:
            self.style_choice.addItem(f"{n} (non-commercial)" if store and store.entry(n).noncommercial
                                      else n, n)
        self.browse = QPushButton("Painting…")
        self.browse.clicked.connect(self._browse_painting)
        row.addWidget(self.style_choice, 1)
        row.addWidget(self.browse)
        self.style_strength = self._slider(config.style.strength)
        form.addRow("Style", row)
        form.addRow("Strength", self.style_strength)
        self.style_box.setLayout(form)
        if config.style.style:
            self.add_painting(config.style.style)
        lay.addStretch(1)
        self.restore()
        for w in (self.det_model, self.seg_model, self.seg_overlay, self.style_choice):
            w.currentIndexChanged.connect(self._touched)
        for s in (self.det_conf, self.det_iou):
            s.valueChanged.connect(self._touched)
        for sl in (self.seg_opacity, self.style_strength):
            sl.valueChanged.connect(self._touched)

    # ---- widgets ----------------------------------------------------------------------------
    def _group(self, lay: QVBoxLayout, title: str, task: str) -> QGroupBox:
        g = QGroupBox(title)
        g.setCheckable(True)
        g.setChecked(False)
        if not task_available(task):
            g.setEnabled(False)
            g.setToolTip(f"the '{task}' pipeline is not installed in this build")
            g.setTitle(f"{title} (not available)")
        g.toggled.connect(self._touched)
        lay.addWidget(g)
        return g

    @classmethod
    def _combo(cls, items: list[str], current: str) -> QComboBox:
        c = QComboBox()
        c.addItems(items)
        cls._select(c, current)
        return c

    @staticmethod
    def _spin(value: float) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setRange(0.0, 1.0)
        s.setSingleStep(0.05)
        s.setDecimals(2)
        s.setValue(value)
        return s

    @staticmethod
    def _slider(value: float) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(0, 100)
        s.setValue(round(value * 100))
        return s

    @staticmethod
    def _select(combo: QComboBox, text: str) -> None:
        i = combo.findData(text)
        if i < 0:
            i = combo.findText(text)
        if i >= 0:
            combo.setCurrentIndex(i)

    def add_painting(self, path: str) -> None:
        i = self.style_choice.findData(path)
        if i < 0:
            self.style_choice.addItem(Path(path).name, path)
            i = self.style_choice.count() - 1
        self.style_choice.setCurrentIndex(i)

    def _browse_painting(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a painting", "", PAINTING_FILTER)
        if path:
            self.add_painting(path)

    def _touched(self, *_: Any) -> None:
        self._debounce.start()

    # ---- state ------------------------------------------------------------------------------
    def set_task(self, task: str, on: bool) -> None:
        group = {"detect": self.detect_box, "face": self.face_box, "segment": self.segment_box,
                 "style": self.style_box}[task]
        if group.isEnabled():
            group.setChecked(on)

    def tasks(self) -> tuple[str, ...]:
        on = [t for t, g in (("style", self.style_box), ("segment", self.segment_box), ("detect", self.detect_box),
                             ("face", self.face_box)) if g.isEnabled() and g.isChecked()]
        if not self.style_choice.currentData() and "style" in on:
            on.remove("style")  # nothing to paint with yet; problem() says so
        return tuple(on) or ("passthrough",)

    def spec(self) -> PipelineSpec:
        o: dict[str, Any] = {
            "detect.model": self.det_model.currentText(),
            "detect.confidence": round(self.det_conf.value(), 3),
            "detect.iou": round(self.det_iou.value(), 3),
            "segment.model": self.seg_model.currentText(),
            "segment.overlay": self.seg_overlay.currentText(),
            "segment.opacity": self.seg_opacity.value() / 100.0,
            "style.strength": self.style_strength.value() / 100.0,
        }
        if self.style_choice.currentData():
            o["style.style"] = self.style_choice.currentData()
        return PipelineSpec(self.tasks(), o)

    def problem(self) -> str:
        """Why the current choice cannot run, or ''."""
        if self.style_box.isChecked() and not self.style_choice.currentData():
            return "style transfer needs a painting or a style model: pick one in the Style box"
        return ""

    def save(self) -> None:
        s = self.settings
        s.setValue("pipeline/tasks", ",".join(self.tasks()))
        s.setValue("pipeline/detect_model", self.det_model.currentText())
        s.setValue("pipeline/detect_conf", self.det_conf.value())
        s.setValue("pipeline/detect_iou", self.det_iou.value())
        s.setValue("pipeline/seg_model", self.seg_model.currentText())
        s.setValue("pipeline/seg_overlay", self.seg_overlay.currentText())
        s.setValue("pipeline/seg_opacity", self.seg_opacity.value())
        paintings = [self.style_choice.itemData(i) for i in range(self.style_choice.count())]
        s.setValue("pipeline/paintings", [p for p in paintings if p and Path(p).suffix])
        s.setValue("pipeline/style", self.style_choice.currentData() or "")
        s.setValue("pipeline/style_strength", self.style_strength.value())

    def restore(self) -> None:
        s = self.settings
        if s.value("pipeline/tasks") is None:
            return
        for p in setting_list(s, "pipeline/paintings"):
            self.add_painting(p)
        self._select(self.style_choice, str(s.value("pipeline/style", "")))
        self._select(self.det_model, str(s.value("pipeline/detect_model", "")))
        self._select(self.seg_model, str(s.value("pipeline/seg_model", "")))
        self._select(self.seg_overlay, str(s.value("pipeline/seg_overlay", "")))
        self.det_conf.setValue(setting_number(s, "pipeline/detect_conf", self.det_conf.value()))
        self.det_iou.setValue(setting_number(s, "pipeline/detect_iou", self.det_iou.value()))
        self.seg_opacity.setValue(round(setting_number(s, "pipeline/seg_opacity", self.seg_opacity.value())))
        self.style_strength.setValue(round(setting_number(s, "pipeline/style_strength",
                                                          self.style_strength.value())))
        tasks = str(s.value("pipeline/tasks", "")).split(",")
        for t in ("detect", "face", "segment", "style"):
            self.set_task(t, t in tasks)
