"""vision_app: the real-time vision pipeline core (no Qt here)."""
__version__ = "0.1.0"
