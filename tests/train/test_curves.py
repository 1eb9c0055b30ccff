"""Learning curves read from a real run's log, as ratios to doing nothing on its validation cases."""
import yaml

from bake_seq.train import curves
from bake_seq.train.loop import Trainer
from tests.train.test_restore_train import tiny_global
from tests.train.test_train_loop import image_folder  # noqa: F401  (fixture)


def test_curves_of_a_run_are_ratios_to_doing_nothing(image_folder, tmp_path, capsys):  # noqa: F811
    families = {"clean": 0.3, "fade": 0.4, "cdl": 0.3}
    run = tmp_path / "run"
    Trainer(tiny_global(image_folder, run, steps=4, val_data=str(image_folder), val_every=2, val_cases=1,
                        families=families), echo=lambda _: None).fit()
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"preset": "global", "families": families, "val_cases": 1, "downscale": 1}))
    nothing = curves.nothing_scores(str(image_folder), str(config))
    assert set(nothing) == {"clean", "cdl", "fade"} and nothing["clean"] == 0 and nothing["fade"] > 0
    rows = curves.curve(run, nothing)
    assert [r["step"] for r in rows] == [2, 4]
    log = {r["step"]: r for r in curves.read_log(run / "log.jsonl") if "val_fade" in r}
    assert abs(rows[-1]["fade"] - log[4]["val_fade"] / nothing["fade"]) < 1e-12
    assert abs(rows[-1]["worst"] - log[4]["val_de2000"]) < 1e-9  # the run's own selection value
    assert curves.main([str(run), "--val-data", str(image_folder), "--config", str(config),
                        "--plot", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "| step | clean | cdl × | fade × | worst |" in out and (tmp_path / "c.png").stat().st_size > 1000
