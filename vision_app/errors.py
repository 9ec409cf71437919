"""The project's error hierarchy.

Every error a user can cause (bad source, bad model file, bad config, a locked gallery) is one of these,
with a message that says what was expected, what was found and what to do.
"""
from __future__ import annotations


class VisionAppError(Exception):
    """Base class of every error the app raises on purpose."""


class SourceError(VisionAppError):
    """A frame source cannot be opened or read (camera missing, file corrupt, stream down)."""


class EngineError(VisionAppError):
    """An inference engine cannot load a model or run a feed."""


class ModelError(VisionAppError):
    """A model is missing from the model folder, has the wrong checksum, or has unexpected outputs."""


class ConfigError(VisionAppError):
    """A config file or command-line option is invalid."""


class GalleryError(VisionAppError):
    """The face gallery or access log cannot be read or written."""


class DecodeError(VisionAppError):
    """Raw model outputs do not have the layout a decoder expects."""


class MonitoringError(VisionAppError):
    """An MQTT broker or the metrics endpoint cannot be reached, refuses us, or cannot be set up."""


class EngineUnavailable(EngineError):
    """An inference server cannot be reached for now (down, restarting, silent, model not loaded yet).

    The engine retries with backoff; the pipeline reports the outage once, does not count it towards
    disabling the stage, and reports when the stage works again."""
