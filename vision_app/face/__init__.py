"""Face analysis and access: detection (YuNet decoder), alignment, embedding, quality gates,
liveness (passive, blink, temporal), the face pipeline stage, gallery, matching and the kiosk
access controller. Nothing is imported here; import the submodules you need."""
