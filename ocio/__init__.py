"""Colour management for bake-seq: which OCIO config, which colour space, and conversion.

Knows nothing of models or frame sequences; callers hand it names and float RGB pixels.
Import from the modules (``ocio.config``, ``ocio.convert``, ``ocio.errors``): re-exporting
``convert`` here would hide the ``ocio.convert`` module behind the function of that name.
"""
