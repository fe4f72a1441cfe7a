"""The procedural world the built-in model and encoders are pretrained on.

Seeded 64 px scenes of one object (six classes, many designs each) in a context, optionally with a property,
an accessory and a style, plus the captions that describe them. Everything is a pure function of a seed.
"""
