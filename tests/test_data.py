"""SynthBirds, CUB-200-2011, image folders and transforms."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_cub
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader

from arpviz.data import (
    CUB200,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PART_NAMES,
    ImageFolderDataset,
    SynthBirds,
    SynthBirdsConfig,
    class_cues,
    class_names,
    default_resize,
    eval_transform,
    image_rng,
    render_bird,
    train_transform,
)

SMALL = SynthBirdsConfig(train_size=96, val_size=48, test_size=48)


# --------------------------------------------------------------------------- config


def test_config_defaults_and_dict_round_trip() -> None:
    cfg = SynthBirdsConfig()
    assert cfg.num_classes == 24 and cfg.image_size == 128
    assert (cfg.train_size, cfg.val_size, cfg.test_size) == (6000, 1500, 1500)
    assert 0.2 <= cfg.scale_min < cfg.scale_max <= 0.66
    again = SynthBirdsConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert SynthBirdsConfig.from_dict({"seed": 3}) == SynthBirdsConfig(seed=3)
    assert cfg.replace(clutter=0).clutter == 0


@settings(max_examples=25, deadline=None)
@given(
    num_classes=st.integers(2, 216),
    image_size=st.integers(16, 512),
    scale=st.tuples(st.floats(0.05, 0.75), st.floats(0.05, 0.75)).map(sorted),
    subtlety=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**63),
)
def test_config_json_round_trip_property(
    num_classes: int, image_size: int, scale: list[float], subtlety: float, seed: int
) -> None:
    cfg = SynthBirdsConfig(
        num_classes=num_classes,
        image_size=image_size,
        scale_min=scale[0],
        scale_max=scale[1],
        subtlety=subtlety,
        seed=seed,
    )
    assert SynthBirdsConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "changes,error,name",
    [
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"num_classes": 217}, ValueError, "num_classes"),
        ({"num_classes": 24.0}, TypeError, "num_classes"),
        ({"image_size": 8}, ValueError, "image_size"),
        ({"train_size": -1}, ValueError, "train_size"),
        ({"scale_min": 0.6, "scale_max": 0.3}, ValueError, "scale_min"),
        ({"scale_max": 0.9}, ValueError, "scale_max"),
        ({"subtlety": 1.5}, ValueError, "subtlety"),
        ({"subtlety": float("nan")}, ValueError, "subtlety"),
        ({"clutter": True}, TypeError, "clutter"),
        ({"part_size": 0.0}, ValueError, "part_size"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_config_rejects_bad_values(changes: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        SynthBirdsConfig(**changes)


def test_config_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="colour"):
        SynthBirdsConfig.from_dict({"colour": "red"})
    with pytest.raises(TypeError, match="data"):
        SynthBirdsConfig.from_dict([("seed", 1)])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- classes


def test_class_names_are_unique_descriptive_and_nested() -> None:
    names = class_names(24)
    assert len(names) == 24 and len(set(names)) == 24
    assert all("beak" in n and "crown" in n for n in names)
    assert class_names(12) == names[:12]
    assert len(set(class_names(216))) == 216
    cues = class_cues(24)
    # the classes really are fine-grained: several share the beak colour, and every cue varies
    assert len({c.beak_colour for c in cues}) == 4
    assert len({c.beak_shape for c in cues}) == 3
    assert {c.eye_ring for c in cues} == {False, True}
    assert {c.wing_bars for c in cues} == {0, 1, 2}
    assert len({c.crown for c in cues}) == 3
    with pytest.raises(ValueError, match="num_classes"):
        class_names(300)


# --------------------------------------------------------------------------- rendering


def test_render_is_deterministic_and_order_free() -> None:
    a, b = SynthBirds(SMALL, "train"), SynthBirds(SMALL, "train")
    first = [a.render(i).image for i in (5, 2, 9)]
    second = [b.render(i).image for i in (9, 2, 5)][::-1]
    for x, y in zip(first, second, strict=True):
        assert np.array_equal(x, y)
    s5 = a.render(5)
    assert s5.keypoints == b.render(5).keypoints and s5.box == b.render(5).box


def test_different_index_seed_or_split_gives_a_different_image() -> None:
    base = SynthBirds(SMALL, "train").render(4).image
    assert not np.array_equal(base, SynthBirds(SMALL, "train").render(5).image)
    assert not np.array_equal(base, SynthBirds(SMALL.replace(seed=1), "train").render(4).image)
    assert not np.array_equal(base, SynthBirds(SMALL, "val").render(4).image)
    images = np.stack([SynthBirds(SMALL, "test").render(i).image for i in range(20)])
    flat = images.reshape(20, -1)
    assert len({row.tobytes() for row in flat}) == 20


def test_sample_layout_and_ground_truth() -> None:
    ds = SynthBirds(SMALL, "val")
    size = SMALL.image_size
    lo, hi = SMALL.margin * size, (1 - SMALL.margin) * size
    for i in range(len(ds)):
        s = ds.render(i)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
        assert s.label == i % SMALL.num_classes == ds.label(i)
        x1, y1, x2, y2 = s.box
        assert all(float(v).is_integer() for v in s.box)
        assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
        assert lo - 1 <= x1 and x2 <= hi + 1 and lo - 1 <= y1 and y2 <= hi + 1
        assert set(s.keypoints) == set(PART_NAMES)
        for name, (x, y) in s.keypoints.items():
            assert x1 <= x <= x2 and y1 <= y <= y2, (i, name)
        # the object side follows the configured scale range
        side = max(x2 - x1, y2 - y1) / size
        assert SMALL.scale_min - 0.06 <= side <= SMALL.scale_max + 0.02, (i, side)


def test_box_encloses_the_drawn_bird() -> None:
    cfg = SMALL.replace(clutter=0, noise_std=0.0)
    for i in range(12):
        rng_a, rng_b = image_rng(0, "train", i), image_rng(0, "train", i)
        with_bird = render_bird(cfg, i % 24, rng_a)
        # the same draws without the bird: pixels that differ belong to the bird
        plain = _render_without_bird(cfg, rng_b)
        ys, xs = np.nonzero(np.any(with_bird.image != plain, axis=2))
        x1, y1, x2, y2 = with_bird.box
        assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
        # and it is tight: the bird reaches every side of its box (within a pixel or two)
        assert xs.min() <= x1 + 2 and xs.max() >= x2 - 3
        assert ys.min() <= y1 + 2 and ys.max() >= y2 - 3


def _render_without_bird(cfg: SynthBirdsConfig, rng: np.random.Generator) -> np.ndarray:
    from arpviz.data import synthbirds as sb

    gain = rng.uniform(0.85, 1.15)
    return sb.draw_scene(rng, cfg, gain)


@pytest.mark.parametrize("size", [32, 64, 200])
def test_render_at_several_sizes(size: int) -> None:
    cfg = SMALL.replace(image_size=size)
    s = SynthBirds(cfg, "train").render(3)
    assert s.image.shape == (size, size, 3)
    assert s.box[2] <= size and s.box[3] <= size
    big = SynthBirds(cfg.replace(image_size=2 * size), "train").render(3)
    # same draws at twice the size: geometry scales, up to rounding of the box
    assert np.allclose(np.array(big.box) / 2, s.box, atol=1.0)
    for name in PART_NAMES:
        assert np.allclose(np.array(big.keypoints[name]) / 2, s.keypoints[name], atol=1e-6)


def test_class_balance() -> None:
    ds = SynthBirds(SMALL, "train")
    counts = np.bincount(ds.targets, minlength=SMALL.num_classes)
    assert counts.tolist() == [len(ds) // SMALL.num_classes] * SMALL.num_classes
    full = SynthBirds(SynthBirdsConfig(), "train")
    counts = np.bincount(full.targets)
    assert counts.max() - counts.min() == 0 and counts.sum() == 6000


def test_label_changes_only_the_cue_parts() -> None:
    for i in range(16):
        a = render_bird(SMALL, i % 24, image_rng(0, "train", i))
        b = render_bird(SMALL, (i + 5) % 24, image_rng(0, "train", i))
        # visible changes (cv2's anti-aliasing may nudge a pixel just outside by a level or two)
        changed = np.abs(a.image.astype(int) - b.image).max(axis=2) > 8
        ys, xs = np.nonzero(changed)
        box = np.array([a.box, b.box])
        x1, y1 = box[:, :2].min(axis=0)
        x2, y2 = box[:, 2:].max(axis=0)
        assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
        area = (a.box[2] - a.box[0]) * (a.box[3] - a.box[1])
        assert changed.sum() < 0.25 * area  # small parts, not the whole bird
        for name in PART_NAMES:
            if name != "beak":
                assert a.keypoints[name] == b.keypoints[name]


def test_nuisance_statistics_do_not_depend_on_the_class() -> None:
    """Body colour, size and position: the same distribution for every class."""
    ds = SynthBirds(SynthBirdsConfig(train_size=480), "train")
    feats = {0: [], 1: []}
    for i in range(len(ds)):
        s = ds.render(i)
        x, y = (int(v) for v in s.keypoints["body"])
        colour = s.image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
        x1, y1, x2, y2 = s.box
        feats[int(s.label >= 12)].append([*colour, x2 - x1, (x1 + x2) / 2, s.image.mean()])
    a, b = np.array(feats[0]), np.array(feats[1])
    se = np.sqrt(a.var(axis=0) / len(a) + b.var(axis=0) / len(b))
    t = np.abs(a.mean(axis=0) - b.mean(axis=0)) / se
    assert (t < 4.0).all(), t


def test_subtlety_brings_classes_closer() -> None:
    # classes 0 and 1 differ; the same draws render both at two subtlety levels
    def gap(subtlety: float) -> float:
        cfg = SMALL.replace(subtlety=subtlety, noise_std=0.0)
        total = 0.0
        for i in range(8):
            a = render_bird(cfg, 0, image_rng(0, "train", i)).image.astype(float)
            b = render_bird(cfg, 1, image_rng(0, "train", i)).image.astype(float)
            total += np.abs(a - b).sum()
        return total

    assert gap(1.0) < gap(0.0)


def test_clutter_knob() -> None:
    clean = SMALL.replace(clutter=0, noise_std=0.0)
    busy = SMALL.replace(clutter=40, noise_std=0.0)

    def edges(cfg: SynthBirdsConfig) -> float:
        ds = SynthBirds(cfg, "train")
        return float(
            np.mean(
                [
                    np.abs(np.diff(ds.render(i).image.astype(float), axis=1)).mean()
                    for i in range(10)
                ]
            )
        )

    assert edges(busy) > edges(clean)


# --------------------------------------------------------------------------- data set API


def test_dataset_items_and_errors() -> None:
    ds = SynthBirds(SMALL, "test")
    assert len(ds) == 48 and ds.num_classes == 24 and len(ds.class_names) == 24
    x, y = ds[7]
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and y == 7
    assert torch.equal(ds[-1][0], ds[47][0])
    with pytest.raises(IndexError):
        ds[48]
    with pytest.raises(TypeError, match="index"):
        ds[1.0]  # type: ignore[index]
    with pytest.raises(ValueError, match="split"):
        SynthBirds(SMALL, "validation")
    with pytest.raises(TypeError, match="config"):
        SynthBirds({"seed": 0}, "train")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label"):
        render_bird(SMALL, 24, image_rng(0, "train", 0))


def test_dataset_with_transform_and_loader() -> None:
    ds = SynthBirds(SMALL, "train", transform=eval_transform(112))
    x, _ = ds[0]
    assert x.shape == (3, 112, 112)
    batch, labels = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch.shape == (4, 3, 112, 112) and labels.tolist() == [0, 1, 2, 3]
    clone = copy.deepcopy(ds)  # what a worker gets: renders the same pixels
    assert torch.equal(clone[5][0], ds[5][0])


# --------------------------------------------------------------------------- transforms


def test_transform_sizes_follow_the_spec() -> None:
    assert default_resize(448) == 512 and default_resize(128) == 146
    image = Image.new("RGB", (500, 375), (120, 60, 30))
    assert train_transform(448)(image).shape == (3, 448, 448)
    assert eval_transform(448)(image).shape == (3, 448, 448)
    assert eval_transform(448, keep_aspect=True)(image).shape == (3, 448, 448)
    out = eval_transform(64, mean=None, std=None)(image)
    assert torch.allclose(out[:, 5, 5], torch.tensor([120, 60, 30]) / 255.0, atol=1e-6)
    norm = eval_transform(64)(image)
    expected = (torch.tensor([120, 60, 30]) / 255.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    assert torch.allclose(norm[:, 5, 5], expected, atol=1e-5)
    assert type(norm) is torch.Tensor
    arr = np.zeros((50, 60, 3), np.uint8)
    assert eval_transform(32)(arr).shape == (3, 32, 32)


def test_train_transform_flips_at_random_and_eval_does_not() -> None:
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[:, :8] = 255  # left half white
    image = Image.fromarray(arr)
    torch.manual_seed(0)
    lefts = {float(train_transform(16, 16, mean=None, std=None)(image)[0, 8, 0]) for _ in range(20)}
    assert lefts == {0.0, 1.0}
    assert float(eval_transform(16, 16, mean=None, std=None)(image)[0, 8, 0]) == 1.0


def test_transform_argument_errors() -> None:
    with pytest.raises(ValueError, match="resize"):
        train_transform(448, 400)
    with pytest.raises(TypeError, match="image_size"):
        eval_transform(448.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mean and std"):
        eval_transform(64, mean=None)


# --------------------------------------------------------------------------- CUB


def test_cub_splits_labels_and_boxes(tmp_path: Path) -> None:
    root = make_cub(tmp_path / "cub")
    train, test = CUB200(root, "train"), CUB200(root, "test")
    assert len(train) == 3 and len(test) == 3
    assert [s.image_id for s in train.samples] == [1, 3, 4]
    assert train.targets == [0, 1, 2] and test.targets == [0, 2, 1]
    assert train.num_classes == 3
    assert train.classes[0] == "001.Black_footed_Albatross"
    assert train.class_names[0] == "Black footed Albatross"
    assert train.box(1) == (5.5, 6.5, 15.5, 18.5)
    x, y = train[1]
    assert x.shape == (3, 36, 24) and y == 1
    x, _ = test[0]
    assert x.shape == (3, 32, 32)
    x, _ = CUB200(root, "test", transform=eval_transform(16))[2]
    assert x.shape == (3, 16, 16)


def test_cub_accepts_the_archive_folder(tmp_path: Path) -> None:
    make_cub(tmp_path / "CUB_200_2011")
    assert len(CUB200(tmp_path, "train")) == 3


@pytest.mark.parametrize(
    "missing",
    ["train_test_split.txt", "image_class_labels.txt", "classes.txt", "bounding_boxes.txt"],
)
def test_cub_missing_metadata_file_is_named(tmp_path: Path, missing: str) -> None:
    root = make_cub(tmp_path / "cub")
    (root / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        CUB200(root, "train")


def test_cub_missing_root_images_txt_or_image(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        CUB200(tmp_path / "nowhere")
    root = make_cub(tmp_path / "cub")
    (root / "images.txt").unlink()
    with pytest.raises(FileNotFoundError, match="images.txt"):
        CUB200(root)
    root = make_cub(tmp_path / "cub2")
    ds = CUB200(root, "train")
    ds.samples[0].path.unlink()
    with pytest.raises(FileNotFoundError, match="img_0001.jpg"):
        ds[0]


def test_cub_malformed_metadata(tmp_path: Path) -> None:
    root = make_cub(tmp_path / "a")
    (root / "bounding_boxes.txt").write_text("1 2.0 3.0\n")
    with pytest.raises(ValueError, match="bounding_boxes.txt line 1"):
        CUB200(root)
    root = make_cub(tmp_path / "b")
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n3 9\n4 3\n5 3\n6 2\n")
    with pytest.raises(ValueError, match="class 9"):
        CUB200(root)
    root = make_cub(tmp_path / "c")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n")
    with pytest.raises(ValueError, match="train_test_split.txt has no entry for image id 3"):
        CUB200(root)
    root = make_cub(tmp_path / "d")
    (root / "images.txt").write_text("1 ../../outside.jpg\n")
    with pytest.raises(ValueError, match="leaves images"):
        CUB200(root)
    with pytest.raises(ValueError, match="split"):
        CUB200(make_cub(tmp_path / "e"), "val")


# --------------------------------------------------------------------------- image folder


def test_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "birds"
    for cls, names in {
        "sparrow": ["b.png", "a.jpg"],
        "finch": ["x.JPEG"],
        ".hidden": ["h.png"],
    }.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            fmt = "PNG" if name.endswith(".png") else "JPEG"
            Image.new("RGB", (12, 10), (len(cls) * 20, 0, 0)).save(root / cls / name, format=fmt)
    (root / "finch" / "deep").mkdir()
    Image.new("L", (7, 9)).save(root / "finch" / "deep" / "grey.png")
    (root / "finch" / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(root)
    assert ds.classes == ("finch", "sparrow") and ds.class_to_idx == {"finch": 0, "sparrow": 1}
    assert [p.name for p, _ in ds.samples] == ["x.JPEG", "grey.png", "a.jpg", "b.png"]
    assert ds.targets == [0, 0, 1, 1]
    x, y = ds[1]
    assert x.shape == (3, 9, 7) and y == 0
    x, _ = ImageFolderDataset(root, transform=eval_transform(8))[3]
    assert x.shape == (3, 8, 8)
    only_png = ImageFolderDataset(root, extensions=["png"])
    assert len(only_png) == 2


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ImageFolderDataset(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolderDataset(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(tmp_path)
    with pytest.raises(TypeError, match="extensions"):
        ImageFolderDataset(tmp_path, extensions=".png")
