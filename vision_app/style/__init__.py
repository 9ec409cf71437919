"""Style transfer: arbitrary style from any painting (Magenta) and fixed-style Johnson networks.

Modules: vectors (painting → cached style vector), stylizers (Magenta, Johnson: frame → stylized frame
of the same size), stage (the pipeline stage, its builder and the license report).
"""
from vision_app.style.stage import StyleStage, build_style_stage

__all__ = ["StyleStage", "build_style_stage"]
