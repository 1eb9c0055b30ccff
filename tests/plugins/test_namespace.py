"""Issue 15: bake-seq's generic folder names live under one bake_seq namespace once installed, so
a host whose environment already has top-level `plugins`, `train`, `ocio` or `sequences` packages
(another ComfyUI custom node's dependency, a studio tool) neither breaks bake-seq nor is broken."""
import os
import subprocess
import sys

from tests.plugins.farm.conftest import REPO
from tests.test_render_cli import png16_with_10bit_codes

CLASHING = ("plugins", "train", "ocio", "sequences")


def test_bake_seq_runs_beside_packages_with_the_same_top_level_names(tmp_path):
    other = tmp_path / "site"  # first on the path, like a host's site-packages entry
    for name in CLASHING:
        (other / name).mkdir(parents=True)
        (other / name / "__init__.py").write_text(f"OWNER = 'someone else'\nraise_if_used = '{name}'\n")
    plate = png16_with_10bit_codes(tmp_path / "plate", range(1001, 1003))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(other)}
    script = (
        "import sys\n"
        "from bake_node.entry import main\n"
        "import plugins, train, ocio, sequences\n"  # the host's own packages still import as theirs
        "assert all(m.OWNER == 'someone else' for m in (plugins, train, ocio, sequences))\n"
        "sys.argv = ['bake-seq'] + sys.argv[1:]\n"
        "main()\n")
    work = tmp_path / "elsewhere"  # not the repository: only the installed bake_seq namespace counts
    work.mkdir()
    for args in (["plugins", "describe"], ["submit", "openjd", plate, "--bundle", str(tmp_path / "job"),
                                           "--temporal", "frame", "--frames", "1001-1002"],
                 ["render", plate, "-o", str(tmp_path / "out"), "--temporal", "frame", "-q"]):
        run = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                             cwd=work, env=env, timeout=300)
        assert run.returncode == 0, (args, run.stderr[-2000:])
    assert (tmp_path / "job" / "template.yaml").exists() and len(list((tmp_path / "out").glob("*.png"))) == 2


def test_the_source_tree_works_without_an_install_too(tmp_path):
    """Farm workers may run the repository itself (PYTHONPATH=<repo>): bake_seq finds the folders there."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", "import bake_seq.ocio.config, bake_seq.plugins.farm.task; "
                          "print(bake_seq.ocio.config.__file__)"], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == str(REPO / "ocio" / "config.py"), run.stderr
