"""The door kiosk's decisions: who gets in, the tamper-evident record of it, and the door.

Exports (import the submodules you need; nothing is imported here):
  controller   AccessController, KioskState: the per-kiosk state machine fed by the face stage
  policy       AccessPolicy, judge: which evidence, over how many frames, lets someone in
  accesslog    AccessLog, default_log_path: the hash-chained SQLite access log and its verification
  door         DoorActuator, LogOnlyDoor, WebhookDoor, build_door: what a grant does
  evaluate     the kiosk loop on spoof and live clips, passive check on stills (`face-eval-liveness`)
  liveness_report  APCER / BPCER, grant rate and time to grant, EAR traces
Arrows: imports vision_app.face and vision_app.gallery; nothing in them imports this package.
"""
