"""Real photographs for training, taken from Debian packages (desktop wallpapers and GCompris).

Training photos must be reproducible and their licences recorded. Images from PyPI wheels other
than scikit-image's and matplotlib's (train.bundled) are reserved for evaluation, so the extra
training photos come from Debian packages: train/debian_photos.json pins each one by package,
version, path and sha256 and records its licence and author. The photos there were chosen by
eye (camera photos of real scenes, all sRGB or untagged). The manifest also lists the
illustrations, renders, paintings, composites and greyscale photos that were left out, and why.

gcompris-qt-data keeps its activity images inside Qt resource containers: an entry with
"container" (usr/share/gcompris-qt/rcc/<activity>.rcc) names the image by its resource path inside
it (read with train.rcc, no Qt needed), its sha256 is of the image's bytes, and its name is
<activity>__<file stem>. Their licences come from the README beside the images in each container.

    python -m bake_seq.train.debian_photos DIR    # writes DIR/train/ and DIR/val/<package>__<name>.png (8-bit sRGB)

Twelve photos go to DIR/val (VALIDATION: six from the wallpaper and puzzle packages, and six
GCompris photos of different kinds of scene: a monument, a landscape, an animal, musicians, an
object, underwater): the global BakeNet's training picks its checkpoint on them, so the bundled holdout
(chelsea, coffee, rocket) stays untouched for the final eval.

Each photo is shrunk (Lanczos) so that its long side is at most 1024 px. This needs apt-get and
dpkg with Debian bookworm in the apt sources. The .debs are kept in DIR/.debs (or --cache).
If apt no longer has the pinned version, the current one is used. A file whose sha256 differs
from the manifest is skipped with a warning. Photos already written are not fetched again.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from bake_node.errors import BakeError, SettingsError
from bake_seq.train.bundled import write_png
from bake_seq.train.rcc import Resources

MANIFEST = Path(__file__).with_name("debian_photos.json")
LONG_SIDE = 1024
VALIDATION = {("lomiri-wallpapers-16.04", "Bridge_by_Sander_Klootwijk"), ("lomiri-wallpapers-16.04", "life_by_Aitzol_Berasategi"),
              ("lxqt-themes", "fog"), ("mate-backgrounds", "Garden"), ("palapeli-data", "castle-maintenon"),
              ("plasma-workspace-wallpapers", "Path"),
              ("gcompris-qt-data", "explore_monuments__hawaMahal"), ("gcompris-qt-data", "details__EilanDonanCastle_background"),
              ("gcompris-qt-data", "erase__meerkats"), ("gcompris-qt-data", "explore_world_music__mexico"),
              ("gcompris-qt-data", "categorization__alphabets"), ("gcompris-qt-data", "clickgame__sea6")}


def destination(folder: Path, photo: dict) -> Path:
    part = "val" if (photo["package"], photo["name"]) in VALIDATION else "train"
    return folder / part / f"{photo['package']}__{photo['name']}.png"


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SettingsError(None, f"{command[0]} not found", "run this on Debian (apt-get and dpkg)") from None


def fetch(package: str, version: str, cache: Path) -> Path:
    """The package's files, extracted under the cache; downloads the .deb once."""
    debs = sorted(cache.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
    if not debs:
        done = run(["apt-get", "download", f"{package}={version}"], cache)
        if done.returncode != 0:
            print(f"warning: apt-get has no {package}={version}; trying the current version", file=sys.stderr)
            done = run(["apt-get", "download", package], cache)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SettingsError(package, f"apt-get download failed ({last})",
                                "run apt-get update (bookworm in the apt sources)")
        debs = sorted(cache.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    root = cache / debs[-1].stem
    if not root.is_dir():
        partial = cache / f".{root.name}.partial"
        done = run(["dpkg", "-x", str(debs[-1]), str(partial)], cache)
        if done.returncode != 0:
            raise SettingsError(str(debs[-1]), f"dpkg -x failed ({done.stderr.strip()})", "delete it and run again")
        partial.rename(root)
    return root


def source_bytes(root: Path, photo: dict, containers: dict[Path, Resources]) -> bytes | None:
    """The photo's bytes: a file in the extracted package, or one inside a Qt resource container
    there ("container"); None when it is not there."""
    if "container" not in photo:
        path = root / photo["path"]
        return path.read_bytes() if path.is_file() else None
    path = root / photo["container"]
    if not path.is_file():
        return None
    if path not in containers:
        containers[path] = Resources(path)
    return containers[path].read(photo["path"]) if photo["path"] in containers[path] else None


def shrunk_bytes(data: bytes, suffix: str) -> np.ndarray:
    """shrunk() for an image held in memory (OpenImageIO reads it from a temporary file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image{suffix}"
        path.write_bytes(data)
        return shrunk(path)


def shrunk(path: Path) -> np.ndarray:
    """H x W x 3 uint8, long side at most LONG_SIDE (Lanczos), EXIF orientation applied."""
    image = oiio.ImageBufAlgo.reorient(oiio.ImageBuf(str(path)))
    image = oiio.ImageBufAlgo.channels(image, (0, 1, 2) if image.nchannels >= 3 else (0, 0, 0))
    width, height = image.spec().width, image.spec().height
    scale = min(1.0, LONG_SIDE / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = oiio.ImageBufAlgo.resize(image, filtername="lanczos3", roi=oiio.ROI(0, size[0], 0, size[1], 0, 1, 0, 3))
    if image.has_error:
        raise SettingsError(str(path), f"cannot read or resize ({image.geterror()})", "check the file")
    return image.get_pixels(oiio.UINT8)


def export(folder: str | Path, cache: str | Path | None = None) -> tuple[Path, int, int]:
    """Write the manifest's photos (skipping ones already there); returns (train folder, written, skipped)."""
    folder = Path(folder)
    cache = Path(cache) if cache else folder / ".debs"
    train = folder / "train"
    for part in (train, folder / "val", cache):
        part.mkdir(parents=True, exist_ok=True)
    photos = json.loads(MANIFEST.read_text())["photos"]
    todo = [p for p in photos if not destination(folder, p).exists()]
    packages = {p["package"]: p["version"] for p in todo}
    roots = {name: fetch(name, version, cache.resolve()) for name, version in packages.items()}
    skipped = 0
    containers: dict[Path, Resources] = {}
    for photo in todo:
        data = source_bytes(roots[photo["package"]], photo, containers)
        if data is None or hashlib.sha256(data).hexdigest() != photo["sha256"]:
            where = f"{photo['container']}:{photo['path']}" if "container" in photo else photo["path"]
            print(f"warning: {photo['package']}: {where} is missing or differs from the manifest (sha256); skipped",
                  file=sys.stderr)
            skipped += 1
            continue
        write_png(destination(folder, photo), shrunk_bytes(data, Path(photo["path"]).suffix))
    if todo and skipped == len(todo):
        raise SettingsError(str(MANIFEST), "no photo matched its sha256", "the packages changed; update the manifest")
    return train, len(todo) - skipped, skipped


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bake_seq.train.debian_photos", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="writes FOLDER/train/ and FOLDER/val/<package>__<name>.png")
    parser.add_argument("--cache", help="where the .debs go (default FOLDER/.debs)")
    args = parser.parse_args()
    try:
        train_dir, written, skipped = export(args.folder, args.cache)
    except BakeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(exc.exit_code)
    print(f"training photos: {train_dir} ({written} written, {skipped} skipped)")
