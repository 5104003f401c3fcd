"""Write an image dataset as PNG files in the `image_directory` layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcli.data.catalog import DATASETS, IMAGE_OPTIONS
from dlcli.errors import DlcliError
from dlcli.keys import did_you_mean

EXPORTABLE = [name for name, info in DATASETS.items() if info.options == IMAGE_OPTIONS]


def export_images(name: str, target: Path) -> dict[str, int]:
    """`target/{train,test}/<class>/<n>.png` from dataset `name`; returns images per subset."""
    from PIL import Image

    if name not in EXPORTABLE:
        raise DlcliError(f"cannot export '{name}'{did_you_mean(name, [*EXPORTABLE, 'tickets'])}: exportable are the image "
                         f"datasets {', '.join(EXPORTABLE)}, and tickets (a generated table)")
    if target.exists() and any(target.iterdir()):
        raise DlcliError(f"{target} is not empty; export into a new folder")
    raw = DATASETS[name].load(config=None)  # image loaders read no dataset options
    counts = {}
    for subset, pool in (("train", raw.train), ("test", raw.test)):
        images, labels = pool.x, pool.labels
        pixels = np.clip(np.rint(images * (255.0 / raw.value_range)), 0, 255).astype("uint8")
        for index, (image, label) in enumerate(zip(pixels, labels)):
            folder = target / subset / raw.class_names[label].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(folder / f"{index:05d}.png")
        counts[subset] = len(images)
    return counts
