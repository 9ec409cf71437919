"""Inference backends: tensors in, tensors out. Never imports PySide6."""
from engines.base import Engine, TensorSpec
from engines.registry import available_backends, create_engine

__all__ = ["Engine", "TensorSpec", "available_backends", "create_engine"]
