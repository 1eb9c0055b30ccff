"""`bake-seq demo`: a degraded 16-bit plate, rendered through the render path, and a contact sheet."""
import pytest
from click.testing import CliRunner

from bake_seq.sequences.plate import read_header


def test_demo(tmp_path, tiny_checkpoint):
    pytest.importorskip("skimage")
    from bake_node.cli import cli

    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--image", "chelsea", "--frames", "2",
                                      "--checkpoint", tiny_checkpoint])
    assert result.exit_code == 0, result.output
    plate = sorted((out / "plate").glob("demo.*.png"))
    restored = sorted((out / "restored").glob("demo.*.png"))
    assert [p.name for p in plate] == [f"demo.{n}.png" for n in range(1001, 1003)]
    assert [p.name for p in restored] == [p.name for p in plate]
    assert read_header(str(plate[0])).bits_per_sample == 16
    assert (out / "contact_sheet.png").stat().st_size > 10_000
    assert "contact sheet:" in result.output and "mean CIEDE2000" in result.output
    assert "verdict:" in result.output  # the numbers come with their meaning
    lines = [line.split() for line in result.output.splitlines() if line.startswith("  ")]
    assert [line[0] for line in lines] == ["darkroom", "cdl", "white_balance", "exposure", "fade", "combo"]
    for line in lines:  # every family: its plate's error, the render's, and their ratio
        before, after, ratio = float(line[2]), float(line[4]), float(line[5].strip("("))
        assert before > 0 and abs(ratio - after / before) < 0.01
    assert [p.name for p in (out / "families" / "fade" / "restored").glob("*.png")] == ["demo.1001.png"]


def test_demo_verdict_says_worse_when_worse():
    from bake_node.commands.demo import verdict

    assert "WORSE" in verdict(7.27, 7.54)
    assert "barely" in verdict(8.0, 7.6) and "0.50" in verdict(8.0, 4.0)
