"""The PySide6 desktop app: main window, gallery dialog, kiosk and monitoring modes.

Only this package imports PySide6. The GUI thread paints and forwards clicks; capture, inference,
decoding and disk I/O run on the worker threads of vision_app.runner.LiveRun (see DESIGN.md, "Threads").
"""
