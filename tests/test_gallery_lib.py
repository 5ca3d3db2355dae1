"""arpviz.explorer.gallery: sources, explained pages, filters and sorting."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.explorer import catalog, gallery
from arpviz.models import StageOverride


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint):
    return ckpt.load(tiny_checkpoint)


def _folder(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, size in enumerate([(60, 40), (50, 90), (70, 70)]):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / ("sub" if i == 2 else "") / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_folder_source_pages_and_thumbnails(bundle, tmp_path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(catalog.FolderNotAllowed):
        gallery.folder_source(folder, roots=[tmp_path / "elsewhere"])
    source = gallery.folder_source(folder, roots=[tmp_path])
    assert len(source) == 4 and gallery.page_count(len(source), 3) == 2
    first = gallery.explain_gallery_page(bundle, source, 0, 3, flips=True, thumb=32)
    second = gallery.explain_gallery_page(bundle, source, 1, 3)
    items = first + second
    assert [i.index for i in items] == [0, 1, 2, 3]
    assert [i.record.ok for i in items] == [False, True, True, True]  # broken.jpg sorts first
    assert items[0].thumbnail is None and items[0].correct is None
    thumb = Image.open(io.BytesIO(items[1].thumbnail))
    assert max(thumb.size) == 32
    assert items[1].flipped is False  # no overrides: nothing flips
    assert items[1].label is None and items[1].correct is None
    with pytest.raises(ValueError, match="page"):
        gallery.explain_gallery_page(bundle, source, 2, 3)


def test_synth_source_labels_flips_filters_and_sorts(bundle) -> None:
    source = gallery.synth_source(bundle.meta)
    assert len(source) == 32 and source.split == "val"
    overrides = {"conv4.local0": StageOverride(mode="arp", k=0.1),
                 "conv3": StageOverride(mode="arp", k=0.1)}
    items = gallery.explain_gallery_page(bundle, source, 0, 8, overrides, flips=True)
    assert all(i.label is not None and i.correct is not None for i in items)
    assert all(i.flipped is not None for i in items)
    assert items[0].record.file == "val #0"
    assert items[0].record.stages["conv4.local0"].k == pytest.approx(0.1)

    everything = gallery.select(items, gallery.GalleryQuery())
    assert everything == items
    right = gallery.select(items, gallery.GalleryQuery(correct="correct"))
    wrong = gallery.select(items, gallery.GalleryQuery(correct="incorrect"))
    assert len(right) + len(wrong) == len(items) and all(i.correct for i in right)
    flips = gallery.select(items, gallery.GalleryQuery(flips_only=True))
    assert all(i.top1 != i.trained_top1 for i in flips)
    name = items[0].record.top5[0].name
    assert all(i.record.top5[0].name == name
               for i in gallery.select(items, gallery.GalleryQuery(classes=(name,))))
    by_conf = gallery.select(items, gallery.GalleryQuery(sort="confidence, high first"))
    assert [i.confidence for i in by_conf] == sorted((i.confidence for i in items), reverse=True)
    rates = sorted(i.rate("conv4.local0") for i in items)
    mid = rates[len(rates) // 2]
    low = gallery.select(items, gallery.GalleryQuery(stage="conv4.local0", rate_range=(0, mid),
                                                     sort="rate, low first"))
    assert [i.rate("conv4.local0") for i in low] == [r for r in rates if r <= mid]
    with pytest.raises(ValueError, match="sort"):
        gallery.select(items, gallery.GalleryQuery(sort="size"))
