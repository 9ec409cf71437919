"""People and their face templates: the encrypted SQLite gallery, matching, enrolment and calibration.

Exports (import the submodules you need; nothing is imported here):
  gallery      Gallery, default_gallery_path: the public gallery API (enrol, list, rename, remove, read)
  records      PersonInfo, PersonRecord, TemplateRecord, ...; check_name, check_embeddings
  store        open_store, TemplateCipher: schema, format/key checks, template encryption
  keyfile      the gallery's Fernet key file (mode 0600) and passphrase keys
  db           Database: the SQLite plumbing (WAL, busy retries) shared with the access log
  matcher      Matcher, TemplateIndex, Match: 1:1 verify and 1:N identify with "unknown"
  identify     GalleryIdentifier, open_matcher, build_face_stage: the gallery behind the face stage
  enroll       FaceAnalyzer, enroll_images: photos → quality-checked templates → one transaction
  gallery_io   export_gallery, import_gallery: encrypted JSON export / validated import
  crops        FaceCrop: the aligned face crop kept (encrypted) with each template
  migrate      migrate_gallery: re-embed a whole gallery with another recognizer (`gallery migrate`)
  bulk         enroll_folder: one sub-folder per person (`gallery enroll-folder`)
  threshold    ThresholdRule, OperatingPoint: the threshold for the gallery's size and its false-accept rate
  evalset      embed_folder, labelled_images: a labelled folder → embeddings, at scale
  far          pair_scores, tar_table, FarCurve: FAR arithmetic and per-comparison FAR curves
  openset      open_set_scores, split_folds: the open-set identification protocol
  calibrate    calibrate, format_report: `face-eval` (verification, open set, recommended threshold)
  bench_search the `bench --tasks face_search` benchmark
Arrows: imports vision_app.face; vision_app.access imports this package; never the other way round.
"""
