"""Face analysis: finding and measuring faces, frame by frame. Knows nothing of people or doors.

Exports (import the submodules you need; nothing is imported here):
  detector     FaceDetector: YuNet decoding of the raw outputs, NMS
  align        align_face, warp_to_template, canonical_crop: 5-point similarity to a recognizer's template
  quality      QualityGates, check_enrollment: size, blur and pose gates
  embedder     FaceEmbedder, EmbedSpec: a manifest recognizer's crop, normalisation and embeddings
  passive      PassiveLiveness: MiniFASNet single-image anti-spoofing
  mesh         FaceMesh, eye aspect ratio; blink: BlinkDetector; temporal: TemporalCheck
  liveness     TrackLiveness, LivenessParams: blink / temporal / head-turn evidence per tracked face
  observation  FaceObservation, FACE_EXTRAS_KEY: what the stage reports per face and frame
  stage        FaceStage, build_face_stage, Identifier (the protocol an identifier implements)
  bench        the `bench --tasks face` benchmark
Arrows: vision_app.gallery and vision_app.access import this package, never the other way round.
"""
