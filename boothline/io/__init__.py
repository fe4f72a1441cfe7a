"""Files and pictures on disk: atomic writes, stale-output removal, reading photos, writing PNG/JPEG/WebP
with their generation parameters, and the one grid drawer (contact sheets, validation and evaluation grids)."""
