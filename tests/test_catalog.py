"""arpviz.explorer.catalog: where checkpoints may come from, and which runs a page shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_checkpoint

from arpviz.checkpoint import load
from arpviz.explorer import catalog


def test_converted_cache_dir_follows_arpviz_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "cache"))
    assert catalog.converted_cache_dir() == tmp_path / "cache" / "converted"
    monkeypatch.delenv("ARPVIZ_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert catalog.converted_cache_dir() == tmp_path / "home" / ".cache" / "arpviz" / "converted"


def test_one_converted_cache_dir_and_imagenet_offers(monkeypatch, tmp_path):
    from arpviz import convert

    assert catalog.converted_cache_dir is convert.converted_cache_dir  # one, the core's
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    assert catalog.imagenet_offers(tmp_path / "out") == []
    weights = tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")  # only its name and size matter to the offer
    [offer] = catalog.imagenet_offers(tmp_path / "out")
    assert (offer.arch, offer.label, offer.weights) == (
        "resnet50", "ImageNet ResNet-50 with ARP", weights)
    assert offer.target == (tmp_path / "out"
                            / "resnet50-11ad3fa6_c3-arp1_c4-arp0.7_dsr0.5.safetensors")


def test_model_card_says_what_a_converted_checkpoint_is(tiny_checkpoint):
    from dataclasses import replace

    meta = load(tiny_checkpoint).meta
    assert catalog.model_card(meta)["about"] == []
    dataset = {"name": "imagenet", "title": "ImageNet-1k, torchvision weights, not fine-tuned",
               "source": "ResNet50_Weights.IMAGENET1K_V2", "fine_tuned": False,
               "arp_inserted": ["conv3", "conv4"], "conv3_k": 1.0, "conv4_k": 0.5,
               "dsr": [0.5, 0.5]}
    about = catalog.model_card(replace(meta, dataset=dataset))["about"]
    assert about[0] == "ImageNet-1k, torchvision weights, not fine-tuned"
    assert about[1] == "weights: ResNet50_Weights.IMAGENET1K_V2"
    assert about[2].startswith("not fine-tuned")
    assert about[3] == "ARP inserted in conv3, conv4 (conv3 k 1, conv4 k 0.5), DSR 0.5 x 0.5"


def test_checkpoint_roots(monkeypatch, tmp_path):
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_ROOTS", raising=False)
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path / "bundled"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "cache"))
    assert catalog.checkpoint_roots() == ((tmp_path / "bundled").resolve(),
                                          (tmp_path / "cache" / "converted").resolve())
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", f"{a}{os.pathsep}{b}{os.pathsep}")
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tmp_path / "mine"))
    assert catalog.checkpoint_roots() == (a.resolve(), b.resolve(), (tmp_path / "mine").resolve())


def test_allowed_folder_resolves_before_it_checks(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    roots = [root]
    assert catalog.allowed_folder(root, roots) == root.resolve()
    assert catalog.allowed_folder(root / "sub", roots) == (root / "sub").resolve()
    assert catalog.allowed_folder(f"{root}/sub/..", roots) == root.resolve()
    for bad in (outside, root / "link", f"{root}/../outside", "/", tmp_path, root.parent / "ro"):
        with pytest.raises(catalog.FolderNotAllowed, match="outside the folders"):
            catalog.allowed_folder(bad, roots)
    with pytest.raises(TypeError, match="folder"):
        catalog.allowed_folder(3, roots)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    write_checkpoint(folder / "msgn_arp.safetensors", "arp", epochs=2)
    write_checkpoint(folder / "msgn_stn.safetensors", "stn", epochs=2, seed=1)
    (folder / "broken.safetensors").write_bytes(b"not a checkpoint")
    (folder / "run.state.safetensors").write_bytes(b"training state: never listed")
    return folder


def test_discover_and_default_runs(runs, tmp_path):
    paths = catalog.find_checkpoints([runs, None, tmp_path / "missing", runs])
    assert [p.name for p in paths] == ["broken.safetensors", "msgn_arp.safetensors",
                                       "msgn_stn.safetensors"]
    upload = load((runs / "msgn_arp.safetensors").read_bytes())
    records, skipped = catalog.discover_runs(paths, upload=(upload, "msgn_arp"))
    assert list(records) == ["msgn_arp", "msgn_stn", "msgn_arp (upload)"]
    assert records["msgn_arp (upload)"].path is None
    assert len(skipped) == 1 and skipped[0].startswith("broken.safetensors:")
    # the chosen checkpoint comes with its ARP/STN counterpart
    pair = ["msgn_arp", "msgn_stn"]
    assert catalog.default_runs(records, runs / "msgn_stn.safetensors") == pair
    assert catalog.default_runs(records, None) == pair
    assert catalog.default_runs(records, "msgn_arp (upload)") == ["msgn_arp (upload)",
                                                                  "msgn_stn"]
    only_stn = {"msgn_stn": records["msgn_stn"]}
    assert catalog.default_runs(only_stn) == ["msgn_stn"]
    with pytest.raises(ValueError, match="records"):
        catalog.default_runs({})


def test_unique_name():
    taken = {"a": 1, "a (x)": 2, "a (x) #2": 3}
    assert catalog.unique_name("b", "b (x)", taken) == "b"
    assert catalog.unique_name("a", "a (y)", taken) == "a (y)"
    assert catalog.unique_name("a", "a (x)", taken) == "a (x) #3"


def test_checkpoint_titles_start_with_what_tells_them_apart(tmp_path) -> None:
    from helpers import write_checkpoint

    from arpviz.explorer import catalog

    a = write_checkpoint(tmp_path / "a.safetensors", "arp", epochs=1, probes=(0,))
    b = write_checkpoint(tmp_path / "b.safetensors", "rp", epochs=1, probes=(0,))
    broken = tmp_path / "c.safetensors"
    broken.write_bytes(b"not a checkpoint")
    titles = catalog.checkpoint_titles([a, b, broken])
    # only Conv4 differs: it comes first, the shared pieces (data, Conv3, backbone) are left out
    assert titles[str(a)] == "Conv4 ARP k 0.7 · a.safetensors"
    assert titles[str(b)] == "Conv4 RP · b.safetensors"
    assert titles[str(broken)] == "c.safetensors"
    alone = catalog.checkpoint_titles([a])[str(a)]
    assert alone.startswith("SynthBirds") and "tiny" in alone


def test_the_roots_mean_the_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A symlinked file under a root that resolves outside every root is neither listed (as a
    checkpoint or a Gallery image) nor loaded by the app's listing; one inside is."""
    from arpviz.explorer import gallery

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.safetensors"
    secret.write_bytes(b"x")
    (root / "inside.safetensors").write_bytes(b"x")
    (root / "leak.safetensors").symlink_to(secret)
    (root / "passwd.safetensors").symlink_to("/etc/passwd")
    (root / "alias.safetensors").symlink_to(root / "inside.safetensors")
    image = outside / "photo.png"
    image.write_bytes(b"x")
    (root / "photo.png").symlink_to(image)
    (root / "own.png").write_bytes(b"x")
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(root))
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path / "bundled"))
    listed = catalog.find_checkpoints([root], roots=catalog.listing_roots())
    assert len(listed) == 1  # inside.safetensors, once (alias.safetensors is the same file)
    assert {p.resolve() for p in listed} == {(root / "inside.safetensors").resolve()}
    assert len(catalog.find_checkpoints([root])) == 3  # no roots given: no filter
    assert not catalog.within_roots(root / "leak.safetensors")
    assert catalog.within_roots(root / "alias.safetensors")
    source = gallery.folder_source(root)
    assert [f.name for f in source.files] == ["own.png"]
