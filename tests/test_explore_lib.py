"""arpviz.explorer (catalog, inputs, controls, live, runtime): the library behind Explore and RP
against ARP."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arpviz.checkpoint import Checkpoint, load
from arpviz.data.synthbirds import SynthBirds
from arpviz.data.transforms import eval_transform
from arpviz.datasources import synth_config
from arpviz.explorer import catalog, inputs, runtime
from arpviz.explorer import controls as ctl
from arpviz.explorer.live import LiveSession, sweep_ks
from arpviz.explorer.results import compare_predictions
from arpviz.models import StageOverride
from arpviz.models.stages import stage_label


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint: Path) -> Checkpoint:
    return load(tiny_checkpoint)


@pytest.fixture(scope="module")
def session(ckpt: Checkpoint) -> LiveSession:
    return LiveSession(ckpt.model, inputs.synth_sample(ckpt.meta, 0), ckpt.meta.class_names)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- checkpoints


def test_find_and_default_checkpoints(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for name in ("z.safetensors", "x.state.safetensors", "notes.txt"):
        (a / name).write_bytes(b"x")
    (b / catalog.BUNDLED_DEFAULT).write_bytes(b"x")
    (b / "y.safetensors").mkdir()  # a folder with the suffix is not a file
    found = catalog.find_checkpoints([a, None, "", tmp_path / "missing", b, a])
    assert [p.name for p in found] == ["z.safetensors", catalog.BUNDLED_DEFAULT]
    assert catalog.default_checkpoint(found) == b / catalog.BUNDLED_DEFAULT
    assert catalog.default_checkpoint(found[:1]) == a / "z.safetensors"
    assert catalog.default_checkpoint([]) is None


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == ("cpu", None)
    assert runtime.resolve_device("cpu") == ("cpu", None)
    device, note = runtime.resolve_device("cuda")
    assert device == "cpu" and "not available" in note
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == ("cuda", None)
    assert runtime.resolve_device("cuda") == ("cuda", None)
    with pytest.raises(ValueError, match="device"):
        runtime.resolve_device("tpu")


def test_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("ARPVIZ_THREADS", "3")
        assert runtime.default_threads() == 3
        for bad in ("zero", "0", ""):
            monkeypatch.setenv("ARPVIZ_THREADS", bad)
            monkeypatch.setattr("os.cpu_count", lambda: 2)
            assert runtime.default_threads() == 1
        monkeypatch.setattr("os.cpu_count", lambda: 64)
        assert runtime.default_threads() == 4
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_model_card(ckpt: Checkpoint) -> None:
    card = catalog.model_card(ckpt.meta)
    assert card["backbone"] == "tiny" and card["classes"] == 24 and card["input_size"] == 128
    assert card["dataset"] == "synthbirds" and card["epochs"] == 2
    assert card["stages"] == [
        {"stage": "Conv3", "mode": "arp", "label": "Conv3 (ARP)", "k": 1.0, "dsr": "0.5",
         "detail": None},
        {"stage": "Conv4 local 0", "mode": "arp", "label": "Conv4 local 0 (ARP)", "k": 0.7,
         "dsr": "0.5", "detail": None},
    ]
    from dataclasses import replace

    bounded = replace(ckpt.meta, config=replace(ckpt.meta.config, conv4="stn", stn_bounded=True))
    assert catalog.model_card(bounded)["stages"][1]["detail"] == "bounded box"
    fixed = replace(ckpt.meta, config=replace(ckpt.meta.config, conv4="rp", conv4_crop=0.7))
    assert catalog.model_card(fixed)["stages"][1]["detail"] == "crop 0.7"
    fg = replace(ckpt.meta, config=replace(ckpt.meta.config, conv4="arpfg", conv4_k=1.5))
    assert catalog.model_card(fg)["stages"][1]["label"] == "Conv4 local 0 (ARP-FG)"
    assert "beyond the paper" in catalog.model_card(fg)["stages"][1]["detail"]
    assert catalog.describe(fg).startswith("SynthBirds") and "Conv4 ARP-FG k 1.5" in \
        catalog.describe(fg)
    assert card["metrics"]["val_top1"] == 16.0 and "epoch" not in card["metrics"]
    assert card["best_val_top1"] == 16.0
    assert catalog.trained_on_synthbirds(ckpt.meta)


# ----------------------------------------------------------------------------- images


def test_preprocess_matches_eval_transform(ckpt: Checkpoint) -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (90, 140, 3), dtype=np.uint8))
    prepared = inputs.preprocess(image, ckpt.meta, name="x")
    expected = eval_transform(128, mean=ckpt.meta.mean, std=ckpt.meta.std)(image)
    assert prepared.tensor.shape == (1, 3, 128, 128)
    torch.testing.assert_close(prepared.tensor[0], expected, atol=1e-5, rtol=0)
    assert prepared.image.shape == (128, 128, 3) and prepared.image.dtype == np.uint8
    assert prepared.source_size == (140, 90)
    assert inputs.preprocess(np.asarray(image), ckpt.meta).key == prepared.key
    assert inputs.preprocess(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ckpt.meta).key \
        != prepared.key
    with pytest.raises(ValueError):
        inputs.preprocess(np.zeros((4, 4), np.uint8), ckpt.meta)
    with pytest.raises(TypeError):
        inputs.preprocess("image.png", ckpt.meta)  # type: ignore[arg-type]


def test_two_images_with_one_input_stay_two_images(ckpt: Checkpoint) -> None:
    """A 5000 x 20 and a 1 x 5000 image of one colour resize to the same input; each keeps
    its own key and its own photo (no cache hands one the other's), and both are flagged."""
    from arpviz.explorer import photo

    wide = inputs.load_upload(_png(Image.new("RGB", (5000, 20), (0, 160, 0))), ckpt.meta, "w")
    tall = inputs.load_upload(_png(Image.new("RGB", (1, 5000), (0, 160, 0))), ckpt.meta, "t")
    assert np.array_equal(wide.image, tall.image) and wide.key != tall.key
    assert (photo.photo_of(wide, ckpt.meta).width, photo.photo_of(wide, ckpt.meta).height) \
        == (5000, 20)
    assert (photo.photo_of(tall, ckpt.meta).width, photo.photo_of(tall, ckpt.meta).height) \
        == (1, 5000)
    assert any(n.startswith("extreme aspect") for n in wide.notes)
    assert any(n.startswith("tiny image") for n in tall.notes)
    assert inputs.load_upload(_png(Image.new("RGB", (300, 200))), ckpt.meta).notes == ()


def test_synth_sample_truth_lines_up_with_the_crop(ckpt: Checkpoint) -> None:
    sample = inputs.synth_sample(ckpt.meta, 2)
    config = synth_config(ckpt.meta.dataset, 128)
    raw = SynthBirds(config, "val").render(2)
    offset = (config.image_size - 128) // 2  # 146 -> 128: 9 pixels each side
    np.testing.assert_array_equal(sample.image, raw.image[offset:offset + 128,
                                                          offset:offset + 128])
    truth = sample.truth
    assert truth is not None and truth.label == raw.label == 2
    assert truth.name == ckpt.meta.class_names[2]
    assert truth.box == pytest.approx(tuple(min(max(v - offset, 0), 128) for v in raw.box))
    beak = raw.keypoints["beak"]
    assert truth.keypoints["beak"] == pytest.approx((beak[0] - offset, beak[1] - offset))
    assert sample.name == "val #2"
    assert inputs.sample_count(ckpt.meta) == 32
    with pytest.raises(IndexError):
        inputs.synth_sample(ckpt.meta, 32)


def test_samples_need_synthbirds(ckpt: Checkpoint) -> None:
    from dataclasses import replace

    meta = replace(ckpt.meta, dataset={"name": "cub", "root": "/nowhere"})
    assert inputs.sample_count(meta) == 0 and not catalog.trained_on_synthbirds(meta)
    with pytest.raises(ValueError, match="SynthBirds"):
        inputs.synth_sample(meta, 0)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"not an image at all", "not a readable image"),
        (b"x" * (inputs.MAX_IMAGE_BYTES + 1), "MB limit"),
    ],
)
def test_load_upload_rejects_bad_files(ckpt: Checkpoint, data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        inputs.load_upload(data, ckpt.meta, "photo.png")
    assert "photo.png" in str(info.value)


def test_load_upload_pixel_limit(ckpt: Checkpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_PIXELS", 100)
    with pytest.raises(ValueError, match="too large"):
        inputs.load_upload(_png(Image.new("RGB", (20, 20))), ckpt.meta, "big.png")


def test_load_upload_converts_and_notes(ckpt: Checkpoint) -> None:
    prepared = inputs.load_upload(_png(Image.new("LA", (50, 40), (80, 128))), ckpt.meta, "a.png")
    assert prepared.image.shape == (128, 128, 3) and prepared.name == "a.png"
    assert any("transparent" in n for n in prepared.notes)
    assert prepared.truth is None


def test_crop_image_resamples_the_box() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :, 0] = np.arange(200, dtype=np.uint8)[None, :]
    crop = inputs.crop_image(image, (50, 10, 150, 60), (8, 16), long_side=64)
    assert crop.shape == (32, 64, 3)
    assert 48 <= crop[0, 0, 0] <= 53 and 146 <= crop[0, -1, 0] <= 150
    square = inputs.crop_image(image, (0, 0, 100, 50), (4, 4), long_side=40)
    assert square.shape == (40, 40, 3)  # stretched to the output's aspect
    with pytest.raises(ValueError):
        inputs.crop_image(image, (5, 5, 5, 10), (4, 4))


# ----------------------------------------------------------------------------- controls


def test_stage_controls_and_overrides(session: LiveSession) -> None:
    controls = session.controls
    assert [c.name for c in controls] == ["conv3", "conv4.global", "conv4.local0"]
    assert [c.steerable for c in controls] == [True, False, True]
    assert controls[0].k == 1.0 and controls[2].k == 0.7 and controls[2].trained_dsr == 0.5
    trained = {c.name: ctl.Knob(c.k, c.trained_dsr) for c in controls if c.steerable}
    assert trained == {"conv3": ctl.Knob(1.0, 0.5), "conv4.local0": ctl.Knob(0.7, 0.5)}
    assert [c.default_k("arp") for c in controls if c.steerable] == [1.0, 0.7]
    assert ctl.overrides_from(controls, trained) == {}
    assert ctl.overrides_from(controls, {}) == {}
    one = ctl.overrides_from(controls, {**trained, "conv4.local0": ctl.Knob(1.2, 0.5)})
    assert one == {"conv4.local0": StageOverride(k=1.2, dsr=(0.5, 0.5), tau=1.0)}
    dsr = ctl.overrides_from(controls, {"conv3": ctl.Knob(1.0, 0.75)})
    assert dsr == {"conv3": StageOverride(k=1.0, dsr=(0.75, 0.75), tau=1.0)}
    rp = ctl.overrides_from(controls, {n: ctl.Knob(mode="rp") for n in trained})
    assert rp == {n: StageOverride(mode="rp", dsr=(0.5, 0.5), tau=1.0) for n in trained}
    arp = ctl.overrides_from(controls, {n: ctl.Knob(mode="arp") for n in trained})
    assert arp == {}  # ARP with its trained k is the trained setting
    assert controls[0].settings(ctl.Knob(0.4, 0.75)).k == 0.4
    assert controls[0].settings() == controls[0].trained


def test_rp_stage_ignores_k(ckpt: Checkpoint) -> None:
    from arpviz.models import MSGN, MSGNConfig

    model = MSGN(MSGNConfig(backbone="tiny", num_classes=3, conv3="rp", conv4="stride",
                            local_branches=0)).eval()
    controls = ctl.stage_controls(model)
    assert [(c.name, c.mode, c.k) for c in controls] == [("conv3", "rp", None),
                                                         ("conv4.main", "stride", None)]
    # the k an RP stage gets when switched to ARP is the model's (conv3_k), not the page's
    assert [c.default_k("arp") for c in controls] == [model.config.conv3_k, None]
    with pytest.raises(ValueError, match="k has no meaning"):
        ctl.overrides_from(controls, {"conv3": ctl.Knob(0.9, 0.5)})
    assert ctl.overrides_from(controls, {"conv3": ctl.Knob(None, 0.5)}) == {}
    assert ctl.overrides_from(controls, {"conv3": ctl.Knob(None, 0.5, None, "arp")}) == {
        "conv3": StageOverride(mode="arp", k=1.0, dsr=(0.5, 0.5), tau=1.0)}


def test_stage_label() -> None:
    assert stage_label("conv3") == "Conv3"
    assert stage_label("conv4.local1") == "Conv4 local 1"
    assert stage_label("conv4.local0", "arp") == "Conv4 local 0 (ARP)"
    assert stage_label("conv4.main", "arpfg") == "Conv4 (ARP-FG)"
    assert stage_label("other") == "other"


# ----------------------------------------------------------------------------- live session


def test_trained_view_matches_explain(ckpt: Checkpoint, session: LiveSession) -> None:
    with torch.no_grad():
        reference = ckpt.model.explain(session.image.tensor)
    view = session.explain()
    assert view is session.trained
    np.testing.assert_allclose(view.probs, reference.logits[0].softmax(0).numpy(), atol=1e-6)
    for name in ("conv3", "conv4.local0"):
        stage = view.stages[name]
        assert stage.image_box == pytest.approx(tuple(reference.image_boxes[name][0].tolist()))
        assert stage.rates == pytest.approx(tuple(reference.stages[name].rates[0].tolist()))
        assert stage.confidence.shape == stage.map_size
    assert view.stages["conv3"].frame == (0.0, 0.0, 128.0, 128.0)
    assert view.stages["conv3"].map_size == (32, 32) and view.stages["conv3"].out_size == (16, 16)
    assert view.stages["conv4.local0"].frame == view.stages["conv3"].image_box
    assert not view.predictions.flipped
    assert all(r.delta == 0 and r.rank_change == 0 for r in view.predictions.rows)


def test_conv4_change_reuses_conv3(ckpt: Checkpoint, session: LiveSession,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    model = ckpt.model
    conv3, branch = model._conv3, model._branch

    def count_conv3(*args, **kwargs):
        calls.append("conv3")
        return conv3(*args, **kwargs)

    def count_branch(*args, **kwargs):
        calls.append("branch")
        return branch(*args, **kwargs)

    monkeypatch.setattr(model, "_conv3", count_conv3)
    monkeypatch.setattr(model, "_branch", count_branch)
    view = session.explain({"conv4.local0": ctl.Knob(0.35, 0.9)})
    assert calls == ["branch"]  # neither Conv3 nor the global branch ran again
    assert view.stages["conv4.local0"].rates == pytest.approx((0.9, 0.9))
    assert view.stages["conv3"].image_box == session.trained.stages["conv3"].image_box
    calls.clear()
    view3 = session.explain({"conv3": ctl.Knob(0.1, 0.3)})
    assert calls == ["conv3", "branch", "branch"]
    assert view3.stages["conv3"].rates == pytest.approx((0.3, 0.3))
    x1, y1, x2, y2 = view3.stages["conv3"].image_box
    assert (x2 - x1, y2 - y1) == pytest.approx((0.3 * 128, 0.3 * 128), abs=1e-3)
    inner = view3.stages["conv4.local0"].image_box
    assert x1 - 1e-4 <= inner[0] < inner[2] <= x2 + 1e-4
    assert view3.stages["conv4.local0"].frame == view3.stages["conv3"].image_box
    assert set(view3.overrides) == {"conv3"}


def test_compare_predictions() -> None:
    names = ("a", "b", "c", "d", "e", "f")
    ref = np.array([0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
    now = np.array([0.2, 0.5, 0.1, 0.05, 0.1, 0.05])
    table = compare_predictions(now, ref, names)
    assert [r.name for r in table.rows] == ["b", "a", "c", "e", "d"]
    assert table.flipped and table.ref_top1_name == "a" and table.ref_top1_prob == 0.4
    b, a = table.rows[0], table.rows[1]
    assert (b.rank, b.ref_rank, b.rank_change) == (1, 2, 1)
    assert (a.rank, a.ref_rank, a.rank_change) == (2, 1, -1)
    assert b.delta == pytest.approx(0.2) and a.delta == pytest.approx(-0.2)
    same = compare_predictions(ref, ref, names, top=3)
    assert len(same.rows) == 3 and not same.flipped
    with pytest.raises(ValueError):
        compare_predictions(now, ref[:3], names)


def _in_mode(session: LiveSession, mode: str, dsr: float = 0.5,
             k: dict[str, float] | None = None) -> dict[str, ctl.Knob]:
    """Every steerable stage of ``session`` in ``mode`` (a side of a comparison)."""
    return {n: ctl.Knob((k or {}).get(n), dsr, None, mode) for n in session.steerable}


def test_compare(session: LiveSession) -> None:
    comparison = session.compare(_in_mode(session, "arp"), _in_mode(session, "rp"),
                                 ("arp", "rp"))
    assert comparison.modes == ("arp", "rp") and list(comparison.views) == ["ARP", "RP"]
    for name in ("conv3", "conv4.local0"):
        assert comparison.second.stages[name].mode == "rp"
        assert comparison.second.stages[name].rates == pytest.approx((0.5, 0.5))
        assert comparison.first.stages[name].mode == "arp"
    np.testing.assert_allclose(comparison.first.probs, session.trained.probs, atol=1e-6)
    assert comparison.second.predictions.ref_top1 == int(np.argmax(comparison.first.probs))
    wide = session.compare(_in_mode(session, "arp", 0.75), _in_mode(session, "rp", 0.75),
                           ("arp", "rp"))
    assert wide.second.stages["conv3"].rates == pytest.approx((0.75, 0.75))
    # any two modes: ARP-FG (beyond the paper) runs with its own default k, each side its k
    fg = session.compare(_in_mode(session, "arpfg"),
                         _in_mode(session, "arp", k={"conv4.local0": 0.4}), ("arpfg", "arp"))
    assert fg.first.stages["conv4.local0"].mode == "arpfg"
    assert fg.first.stages["conv4.local0"].k == pytest.approx(1.5)
    assert fg.second.stages["conv4.local0"].k == pytest.approx(0.4)
    zoom = session.compare(_in_mode(session, "zoom"), _in_mode(session, "rp"), ("zoom", "rp"))
    assert zoom.first.stages["conv4.local0"].mode == "zoom"
    assert zoom.first.stages["conv4.local0"].k is None
    with pytest.raises(ValueError, match="mode"):
        session.compare({}, _in_mode(session, "stn"), ("arp", "stn"))


def test_knob_mode_switches_a_stage(session: LiveSession) -> None:
    controls = session.controls
    assert {m: controls[2].default_k(m) for m in ("arp", "arpfg", "arpfg_peak", "rp", "zoom")} \
        == {"arp": 0.7, "arpfg": 1.5, "arpfg_peak": 1.5, "rp": None, "zoom": None}
    switched = ctl.overrides_from(controls, {"conv4.local0": ctl.Knob(None, 0.5, None,
                                                                        "arpfg")})
    assert switched == {"conv4.local0": StageOverride(mode="arpfg", k=1.5, dsr=(0.5, 0.5),
                                                      tau=1.0)}
    steered = ctl.overrides_from(controls, {"conv4.local0": ctl.Knob(0.9, 0.5, None,
                                                                       "arpfg_peak")})
    assert steered["conv4.local0"].mode == "arpfg_peak" and steered["conv4.local0"].k == 0.9
    view = session.explain({"conv4.local0": ctl.Knob(0.9, 0.5, None, "arpfg")})
    stage = view.stages["conv4.local0"]
    assert stage.mode == "arpfg" and stage.label == "Conv4 local 0 (ARP-FG)"
    assert float(stage.confidence.min()) >= 0.0  # relu(s): no floor
    assert ctl.overrides_from(controls, {"conv4.local0": ctl.Knob(0.7, 0.5, None, "arp")}) \
        == {}
    with pytest.raises(ValueError, match="mode"):
        ctl.overrides_from(controls, {"conv3": ctl.Knob(None, 0.5, None, "stn")})


def test_sweep(session: LiveSession) -> None:
    before = len(session.cache)
    sweep = session.sweep("conv4.local0", ks=[0.2, 0.6, 1.0, 1.6])
    assert len(session.cache) == before  # a cache of its own
    assert sweep.ks.tolist() == [0.2, 0.6, 1.0, 1.6]
    assert sweep.probs.shape == (4, 24)
    np.testing.assert_allclose(sweep.probs.sum(1), 1.0, atol=1e-5)
    assert np.all(np.diff(sweep.crop_w) >= -1e-4) and np.all(np.diff(sweep.crop_h) >= -1e-4)
    assert sweep.rates.shape == (4, 2) and np.all(sweep.rates >= 0.5 - 1e-6)
    assert len(sweep.classes) == 3 and sweep.classes[0] == session.trained.predictions.top1.index
    assert sweep.trained_k == 0.7 and sweep.current_k == 0.7
    assert set(sweep.boxes) == {"conv3", "conv4.local0"}
    assert sweep.boxes["conv4.local0"].shape == (4, 4)
    assert sweep.crops is not None and sweep.crops.shape[0] == 4
    assert sweep.top(0)[0][0] == session.class_names[int(np.argmax(sweep.probs[0]))]
    full = session.sweep("conv4.local0", {"conv4.local0": ctl.Knob(1.5, 0.5)})
    assert len(full.ks) == 39 and full.ks[0] == pytest.approx(ctl.K_RANGE[0])
    assert full.current_k == 1.5 and full.ks[-1] == pytest.approx(ctl.K_RANGE[1])
    assert np.allclose(np.diff(sweep_ks()), ctl.K_STEP)
    conv3 = session.sweep("conv3", ks=[0.2, 1.2])
    assert conv3.crop_w[0] <= conv3.crop_w[1] + 1e-4 and conv3.trained_k == 1.0
    for bad in ("conv4.global", "conv9"):
        with pytest.raises(ValueError, match="cannot be swept"):
            session.sweep(bad)


def test_crops_of_the_trained_view(session: LiveSession) -> None:
    view = session.trained
    crops = {name: inputs.crop_image(view.image, s.image_box, s.out_size, 32)
             for name, s in view.stages.items()}
    assert set(crops) == {"conv3", "conv4.local0"}
    assert all(c.shape == (32, 32, 3) and c.dtype == np.uint8 for c in crops.values())


@pytest.mark.parametrize(
    "options",
    [
        {"local_branches": 0, "conv4": "arp"},
        {"local_branches": 2, "conv4_k": 0.5},
        {"conv4": "stn"},
        {"conv3": "stride", "conv4": "rp"},
        {"conv3": "rp", "conv4": "stride"},
    ],
    ids=["baseline", "two-branches", "stn", "stride-rp", "rp-stride"],
)
def test_other_layouts(ckpt: Checkpoint, options: dict) -> None:
    from dataclasses import replace

    from arpviz.explorer.figures import explore as figures
    from arpviz.explorer.figures import panels
    from arpviz.models import MSGN, MSGNConfig

    torch.manual_seed(0)
    config = MSGNConfig(backbone="tiny", num_classes=24, **options)
    model = MSGN(config).eval()
    meta = replace(ckpt.meta, config=config, input_size=64)
    session = LiveSession(model, inputs.synth_sample(meta, 1), meta.class_names)
    steerable = [c.name for c in session.controls if c.steerable]
    pooled = [c.name for c in session.controls if c.mode != "stride"]
    assert sorted(session.trained.stages) == sorted(pooled)
    knobs = {name: ctl.Knob(1.5 if c.mode == "arp" else None, 0.75)
             for name, c in ((c.name, c) for c in session.controls if c.steerable)}
    view = session.explain(knobs)
    assert set(view.overrides) == set(steerable)
    comparison = session.compare(_in_mode(session, "arp", 0.75), _in_mode(session, "rp", 0.75),
                                 ("arp", "rp"))
    for name in steerable:
        assert comparison.second.stages[name].mode == "rp"
        assert comparison.first.stages[name].mode == "arp"
    if steerable:
        sweep = session.sweep(steerable[-1], knobs, ks=[0.3, 1.0])
        assert sweep.probs.shape == (2, 24)
    for name in view.stages:
        figures.confidence_figure(view, name)
    figures.boxes_figure(view)
    figures.crops_figure(comparison.views)
    panels.rates_figure(view)
    card = catalog.model_card(meta)
    assert len(card["stages"]) == 1 + max(1, config.local_branches)


@pytest.mark.cuda
def test_live_session_on_cuda_matches_the_cpu(tiny_checkpoint: Path) -> None:
    cpu = load(tiny_checkpoint)
    gpu = load(tiny_checkpoint, "cuda")
    image = inputs.synth_sample(cpu.meta, 0)
    knobs = {"conv3": ctl.Knob(0.6, 0.75), "conv4.local0": ctl.Knob(1.3, None)}
    on_cpu = LiveSession(cpu.model, image, cpu.meta.class_names).explain(knobs)
    on_gpu = LiveSession(gpu.model, image, gpu.meta.class_names,
                              device="cuda").explain(knobs)
    np.testing.assert_allclose(on_gpu.probs, on_cpu.probs, atol=1e-4)
    for name, stage in on_cpu.stages.items():
        np.testing.assert_allclose(on_gpu.stages[name].image_box, stage.image_box, atol=1e-3)


def test_a_reid_checkpoint_offers_its_query_images_as_samples() -> None:
    """Explore on a SynthReID checkpoint shows its query split (what Retrieval ranks), prepared
    as the re-ID network evaluates (a square resize to the input size, no crop)."""
    from arpviz.checkpoint import read_meta
    from arpviz.geometry import eval_resize

    meta = read_meta(Path(__file__).resolve().parents[1] / "checkpoints"
                     / "synthreid_msgn_arp.safetensors")
    assert eval_resize(meta) == (meta.input_size, False)
    count = inputs.sample_count(meta)
    assert count > 0 and inputs.sample_split(meta) == "query"
    sample = inputs.synth_sample(meta, count - 1)
    assert sample.image.shape == (meta.input_size, meta.input_size, 3)
    assert sample.truth is not None and sample.truth.label == -1  # an unseen identity
    assert sample.truth.name.startswith("identity ") and sample.name == f"query #{count - 1}"


def test_a_mask_checkpoint_explains_samples_with_their_mask(ckpt: Checkpoint) -> None:
    """An oracle (or mask-placed) stage crops by the bird's true mask: a SynthBirds sample
    carries it, a photo does not (a clear ValueError, no crash inside the model)."""
    from dataclasses import replace

    from arpviz.models import MSGN, MSGNConfig

    torch.manual_seed(0)
    config = MSGNConfig(backbone="tiny", num_classes=24, conv4="oracle", conv4_k=1.5)
    model = MSGN(config).eval()
    meta = replace(ckpt.meta, config=config)
    sample = inputs.synth_sample(meta, 2)
    assert sample.mask is not None and sample.mask.shape == (1, 1, meta.input_size,
                                                             meta.input_size)
    assert 0.0 < float(sample.mask.mean()) < 1.0  # the bird, not the whole image
    session = LiveSession(model, sample, meta.class_names)
    stage = session.trained.stages["conv4.local0"]
    assert stage.mode == "oracle" and stage.rates[0] < 1.0
    steered = session.explain({"conv3": ctl.Knob(0.8, 0.5)})  # the mask follows Conv3
    assert "conv4.local0" in steered.stages
    photo = inputs.preprocess(np.full((80, 60, 3), 120, np.uint8), meta, name="photo")
    with pytest.raises(ValueError, match="true mask"):
        LiveSession(model, photo, meta.class_names)
