"""Which OCIO config bake-seq uses, and what the names in it mean.

The config comes from ``--ocio``, else ``$OCIO``, else a built-in studio config pinned to
one version so a plate converts the same way on every machine and in OpenImageIO (which
bundles its own, older OCIO: ``-latest`` could name different configs in the two).
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache

import PyOpenColorIO as OCIO

from bake_seq.ocio.errors import ColourError
from bake_seq.ocio.guess import guess_colorspace  # noqa: F401  (API of this module; policy lives there)

DEFAULT_CONFIG = "ocio://studio-config-v2.2.0_aces-v1.3_ocio-v2.4"
WORKING_SPACE = "sRGB Encoded Rec.709 (sRGB)"

LIST_HINT = "bake-seq info --list-colorspaces lists all"


def resolve_config(explicit: str | None = None) -> tuple[OCIO.Config, str, str]:
    """Return ``(config, source, reason)``; reason is "--ocio", "$OCIO" or "built-in default"."""
    if explicit:
        source, reason = explicit, "--ocio"
    elif os.environ.get("OCIO", "").strip():
        source, reason = os.environ["OCIO"].strip(), "$OCIO"
    else:
        source, reason = DEFAULT_CONFIG, "built-in default"
    try:
        return _load(source), source, reason
    except (OCIO.Exception, OCIO.ExceptionMissingFile) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else "not a valid OCIO config"
        fix = {
            "--ocio": "pass --ocio a readable .ocio file or an ocio:// built-in config URI",
            "$OCIO": "fix $OCIO or unset it to use the built-in ACES studio config",
        }.get(reason, "reinstall opencolorio (the built-in config ships with it)")
        problem = f"cannot load OCIO config {source!r} (from {reason}): {detail}"
        raise ColourError(problem, fix) from None


@lru_cache(maxsize=None)
def _load(source: str) -> OCIO.Config:
    # Parsing a config and its aliases takes ~10 ms; every frame of every plate asks for it.
    return OCIO.Config.CreateFromFile(os.path.expanduser(source))


def list_colorspaces(config: OCIO.Config) -> list[str]:
    """Active colour-space names (scene- and display-referred), in config order."""
    return list(config.getColorSpaceNames())


def resolve_colorspace(config: OCIO.Config, name: str, what: str = "colour space") -> str:
    """Canonical name for a colour-space name, alias or role (case-insensitive)."""
    # OCIO itself matches names, aliases and roles, ignoring case.
    space = config.getColorSpace(name) if name else None
    if space is not None:
        return space.getName()
    raise ColourError(f"unknown {what} {name!r}", _suggest(config, name or ""))


def short_name(config: OCIO.Config, name: str, limit: int) -> str:
    """``name`` if it fits ``limit`` characters, else its shortest alias that does (DPX text
    fields hold 31): the config resolves aliases like names."""
    if len(name) <= limit:
        return name
    space = config.getColorSpace(name)
    fitting = sorted((a for a in (space.getAliases() if space else ()) if len(a) <= limit), key=len)
    return fitting[0] if fitting else name


def colourspace_is_data(config: OCIO.Config, name: str) -> bool:
    """True for Raw/data spaces, which OCIO never converts (normals, mattes, depth)."""
    return config.getColorSpace(resolve_colorspace(config, name)).isData()


def _suggest(config: OCIO.Config, name: str) -> str:
    spellings: dict[str, str] = {}  # lower-case spelling -> canonical name
    every = config.getColorSpaces(OCIO.SEARCH_REFERENCE_SPACE_ALL, OCIO.COLORSPACE_ALL)
    for space in every:
        for spelling in (space.getName(), *space.getAliases()):
            spellings.setdefault(spelling.lower(), space.getName())
    for role, space_name in config.getRoles():
        spellings.setdefault(role.lower(), space_name)
    close = difflib.get_close_matches(name.lower(), list(spellings), n=6, cutoff=0.6)
    squashed = "".join(ch for ch in name.lower() if ch.isalnum())
    if len(squashed) >= 3:  # 'logc3' finds 'ARRI LogC3 (EI800)': the name typed is part of a longer one
        close += [s for s in spellings if squashed in "".join(ch for ch in s if ch.isalnum())]
    names = list(dict.fromkeys(spellings[c] for c in close))[:3]
    if not names:
        return f"pass a name from the OCIO config ({LIST_HINT})"
    return f"did you mean {', '.join(repr(n) for n in names)}? ({LIST_HINT})"

