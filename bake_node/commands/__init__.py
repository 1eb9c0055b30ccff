"""More `bake-seq` commands, one module each, found automatically.

A module here defines ``command`` (a click command or group); cli.py adds it to `bake-seq`.
Modules import heavy things (training, exporters, farm clients) inside their functions, so
`bake-seq render` never pays for them (and never imports train/).
"""
import importlib
import pkgutil


def discover():
    for module in pkgutil.iter_modules(__path__):
        found = importlib.import_module(f"{__name__}.{module.name}")
        if hasattr(found, "command"):
            yield found.command
