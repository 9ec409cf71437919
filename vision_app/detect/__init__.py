"""Object detection: manifest-driven preprocessing, YOLO-family decoders, NMS, tracking.

Modules: preprocess (resize/letterbox + inverse mapping), decoders (raw head tensors -> boxes,
registry keyed by the manifest's ``decode.type``), nms, tracker (ByteTrack-style) and stage (the
pipeline stage built by ``build_detect_stage``). Nothing is imported or run at import time.
"""
