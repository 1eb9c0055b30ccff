"""`bake-seq plugins`: install the ComfyUI node pack or the Nuke plugin; describe the operators."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click

HOSTS = ("comfyui", "nuke")
FOLDERS = {"comfyui": "bake-seq", "nuke": "bake_seq"}  # the installed folder's name per host
MARKER = ".installed-by-bake-seq"  # an install only ever replaces a folder it made itself
NUKE_INIT_LINE = "nuke.pluginAddPath({path!r})  # added by bake-seq plugins install nuke\n"

EPILOG = """\b
Examples:
  bake-seq plugins install comfyui --dest ~/ComfyUI/custom_nodes
  bake-seq plugins install nuke --dest ~/.nuke
  bake-seq plugins describe
"""


@click.group("plugins", epilog=EPILOG)
def command():
    """Install bake-seq into ComfyUI or Nuke; print the operators' knobs for other hosts."""


@command.command("describe")
def describe():
    """Print every operator and its knobs as JSON (what the Nuke plugin builds its knobs from)."""
    from ..node import describe_operators

    click.echo(json.dumps(describe_operators(), indent=2))


@command.command("install", epilog=EPILOG)
@click.argument("host", type=click.Choice(HOSTS))
@click.option("--dest", required=True, type=click.Path(), metavar="DIRECTORY",
              help="ComfyUI: its custom_nodes folder; Nuke: your .nuke folder")
def install(host, dest):
    """Copy the HOST integration into DEST (replacing an earlier bake-seq install there).

    ComfyUI runs the nodes in its own Python: install bake-seq there too (docs/hosts.md).
    Nuke runs bake-seq as a separate program: the plugin remembers this bake-seq's Python.
    """
    from ..errors import SettingsError
    from ..render import refuse_file_in_path

    dest = Path(dest).expanduser()
    refuse_file_in_path(str(dest), "give ComfyUI's custom_nodes folder, or your .nuke folder")
    if not dest.is_dir():
        raise SettingsError(str(dest), "folder does not exist",
                            "give ComfyUI's custom_nodes folder, or your .nuke folder (mkdir ~/.nuke)")
    target = copy_plugin(host, dest)
    if host == "nuke":
        configure_nuke(dest, target)
        click.echo(f"installed the Nuke plugin in {target}; {dest / 'init.py'} adds it to Nuke's plugin path")
        click.echo(f"Nuke will run bake-seq as: {' '.join(bake_seq_command())}")
    else:
        click.echo(f"installed the ComfyUI node pack in {target}")
        click.echo("ComfyUI's own Python must have bake-seq installed (see docs/hosts.md); restart ComfyUI")


def plugin_source(host: str) -> Path:
    from bake_seq import plugins

    return Path(plugins.__file__).resolve().parent / host


def copy_plugin(host: str, dest: Path) -> Path:
    """Copy the plugin folder beside its final name, then swap it in."""
    from bake_seq.sequences.errors import OutputError

    from ..errors import UnsafeOutputError

    target = dest / FOLDERS[host]
    if target.exists() and not (target / MARKER).exists():
        raise UnsafeOutputError(str(target), "exists and was not made by bake-seq",
                                "move it away, or install into another folder")
    staging = dest / f".{target.name}.partial-{os.getpid()}"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *(["__init__.py"] if host == "nuke" else []))
    try:
        shutil.copytree(plugin_source(host), staging, ignore=ignore)
        (staging / MARKER).write_text("bake-seq replaces this folder on the next install\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as exc:  # copytree gathers its failures in shutil.Error, an OSError too
        raise OutputError(str(target), f"cannot install the plugin ({exc.strerror or 'copy failed'})",
                          "check the folder is writable and has free space") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def bake_seq_command() -> list[str]:
    """How another program runs this bake-seq: this Python, this package (no PATH needed)."""
    return [sys.executable, "-m", "bake_node"]


def configure_nuke(dest: Path, target: Path) -> None:
    """Write what Nuke's Python cannot import (the operators' knobs, how to run bake-seq) beside
    the plugin, and add the plugin to ~/.nuke/init.py once."""
    from .. import __version__
    from ..node import describe_operators

    from bake_seq.sequences.safe_write import write_file

    config = {"bake_seq_version": __version__, "command": bake_seq_command(), "operators": describe_operators()}
    write_file(target / "bake_seq.json", json.dumps(config, indent=2) + "\n", overwrite=True, what="plugin settings")
    init = dest / "init.py"
    text = init.read_text(encoding="utf-8") if init.exists() else ""
    line = NUKE_INIT_LINE.format(path=str(target))
    if line not in text:
        prefix = "" if not text or text.endswith("\n") else "\n"
        needs_import = "import nuke" not in text
        # the user's own init.py, replaced whole (a crash never leaves half of it)
        write_file(init, text + prefix + ("import nuke\n" if needs_import else "") + line, overwrite=True,
                   what="Nuke init.py")
