"""The subject's photos: checking a folder (one manifest row per usable file, one reason per rejected one),
reading a manifest back hash-checked, and drawing the committed demo subject."""
