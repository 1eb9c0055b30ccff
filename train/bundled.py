"""The images the default model is trained on: colour photos bundled with scikit-image and
matplotlib, so training reproduces offline. Three are held out for validation and eval.

    python -m bake_seq.train.bundled DIR      # writes DIR/train/*.png and DIR/holdout/*.png (8-bit sRGB)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from bake_node.errors import SettingsError

TRAIN = ("astronaut", "grace_hopper", "hubble_deep_field", "immunohistochemistry",
         "motorcycle_left", "motorcycle_right", "retina")
# Held out: everyday photos (a cat, a cup of coffee, a rocket on its pad) the model never sees.
# motorcycle_left/right are one stereo pair, so they stay together on the training side.
HOLDOUT = ("chelsea", "coffee", "rocket")


def bundled_image(name: str) -> np.ndarray:
    """H x W x 3 uint8 sRGB."""
    try:
        if name == "grace_hopper":
            import matplotlib.cbook
            import matplotlib.image
            return np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg")))
        import skimage.data
        if name.startswith("motorcycle_"):
            left, right, _ = skimage.data.stereo_motorcycle()
            return left if name.endswith("left") else right
        return getattr(skimage.data, name)()
    except ImportError as exc:
        raise SettingsError(None, f"the bundled images need {exc.name}",
                            "pip install scikit-image matplotlib") from None


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Through the safe writer: two runs exporting at once never read half a file (the same
    photo is the same bytes, so replacing one with the other is harmless)."""
    from bake_seq.sequences.errors import OutputError
    from bake_seq.sequences.safe_write import write_file

    image = oiio.ImageBuf(np.ascontiguousarray(rgb[..., :3]))
    image.specmod().attribute("oiio:ColorSpace", "srgb_rec709_scene")

    def fill(temp: str) -> None:
        if not image.write(temp, fileformat="png"):
            raise OutputError(str(path), f"cannot write ({image.geterror()})", "check the folder is writable and has space")

    write_file(path, fill, overwrite=True, what="training image", fix="choose another --bundled-data folder")


def export(folder: str | Path) -> tuple[Path, Path]:
    """Write the bundled images (skipping ones already there); returns (train, holdout) folders."""
    folder = Path(folder)
    for part, names in (("train", TRAIN), ("holdout", HOLDOUT)):
        (folder / part).mkdir(parents=True, exist_ok=True)
        for name in names:
            path = folder / part / f"{name}.png"
            if not path.exists():
                write_png(path, bundled_image(name))
    return folder / "train", folder / "holdout"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bake_seq.train.bundled DIR")
    train_dir, holdout_dir = export(sys.argv[1])
    print(f"training images: {train_dir}\nheld-out images: {holdout_dir}")
