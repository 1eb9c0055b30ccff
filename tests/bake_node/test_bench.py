"""The benchmark runs and reports every number (no timing assertions: benchmarks are not tests)."""
import json

from click.testing import CliRunner

from bake_node.cli import cli

KEYS = {"infer_s_per_mp", "eager_nchw_s_per_mp", "achieved_gflops", "matmul_fp32_gflops",
        "stages_s_per_frame", "overhead_vs_oiiotool", "wall_over_infer", "peak_rss_4k_gib",
        "max_code_diff_vs_eager_16bit"}


def test_bench_runs_small_and_writes_json(tmp_path, tiny_checkpoint):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--checkpoint", tiny_checkpoint, "--size", "96x64",
                                      "--rss-size", "96x64", "--frames", "2", "--json-file", str(out), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    data = json.loads(out.read_text())
    assert json.loads(result.stdout).keys() == data.keys()  # --json: the same results on stdout
    assert KEYS <= set(data)
    assert set(data["stages_s_per_frame"]) == {"read", "colour_in", "inference", "colour_out", "write"}
    assert all(v > 0 for v in data["stages_s_per_frame"].values())
    assert data["max_code_diff_vs_eager_16bit"] <= 1  # the fused path computes the same function
    assert "infer_s_per_mp" in result.stdout


def test_bench_of_the_global_model_reports_its_targets(tmp_path):
    from tests.bake_node.test_global_model import make_global_checkpoint

    ckpt = make_global_checkpoint(tmp_path / "g.safetensors")
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--checkpoint", ckpt, "--size", "96x64", "--rss-size", "none",
                                      "--frames", "1", "--json-file", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    data = json.loads(out.read_text())
    assert data["architecture"] == "global" and data["macs_per_pixel"] is None
    assert data["dpx_render_over_oiiotool"] > 0 and data["infer_s_per_frame"] > 0
    assert "dpx_render_over_oiiotool" in result.stdout and "target <= 2.0" in result.stdout
