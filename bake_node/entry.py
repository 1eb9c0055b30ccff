"""The `bake-seq` executable: Ctrl-C while torch and the models load is an interruption
(exit 130, one line), not a traceback; then the CLI runs (bake_node/cli.py)."""
import os
import sys


def main() -> None:
    try:
        from .cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("bake-seq: interrupted\n")
        sys.stderr.flush()
        os._exit(130)  # EXIT_INTERRUPTED (bake_node/errors.py), without importing anything more
    run_cli()
