"""bake-seq's own namespace for its generic package names: ``bake_seq.ocio``,
``bake_seq.sequences``, ``bake_seq.plugins`` and ``bake_seq.train`` (the repository keeps them as
top-level folders). Installed, they live under bake_seq/ (setup.cfg's package_dir), so a host's
own ``plugins`` or ``train`` package (ComfyUI custom nodes, a studio's tools) can never be
imported in their place, nor they in its.

From a checkout without an install (PYTHONPATH=<repo>, farm workers running the source tree),
the repository root itself is this package's search path for those four names.
"""
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_ROOT, "setup.cfg")) and os.path.isdir(os.path.join(_ROOT, "ocio")):
    __path__.append(_ROOT)  # noqa: F821  (a package's __path__)
