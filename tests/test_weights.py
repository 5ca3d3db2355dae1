"""arpviz.weights and the CLIs' --download: torchvision's files, fetched only on request.

Files come from a loopback HTTP server (tests/loopback.py) through ``ARPVIZ_WEIGHTS_MIRROR``;
``TORCH_HOME`` is a temporary folder, and a test-only weights entry (a random ResNet-18 state
dict, its file named by its SHA-256 prefix) is registered as resnet18's default.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from loopback import (
    announce,
    closed_port,
    redirect,
    serve,
    silent,
    trickle,
    unannounced,
    weights_entry,
    weights_payload,
)

from arpviz import checkpoint as ckpt
from arpviz import convert as cv
from arpviz import train, weights_catalog, weights_download
from arpviz import weights as wt
from arpviz.models import MSGNConfig, from_torchvision

CATEGORIES = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return weights_payload("resnet18", seed=3)


@pytest.fixture()
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """TORCH_HOME and ARPVIZ_CACHE in the test's folder; no mirror, downloads allowed."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "arpviz"))
    monkeypatch.delenv(wt.MIRROR_ENV, raising=False)
    monkeypatch.delenv(wt.OFFLINE_ENV, raising=False)
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
    return tmp_path / "torch" / "hub" / "checkpoints"


def _register(entry: wt.WeightsEntry) -> Iterator[wt.WeightsEntry]:
    wt.register_weights(entry, default=True)
    try:
        yield entry
    finally:
        wt.unregister_weights(entry)


@pytest.fixture()
def good(payload: bytes) -> Iterator[wt.WeightsEntry]:
    """resnet18's default is the served random file (its checksum matches)."""
    yield from _register(weights_entry(payload))


@pytest.fixture()
def bad(payload: bytes) -> Iterator[wt.WeightsEntry]:
    """resnet18's default names another checksum than the served file has."""
    yield from _register(weights_entry(payload, wrong_checksum=True))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ----------------------------------------------------------------------------- metadata


def test_entries_are_torchvisions_files_in_torch_hubs_cache(home: Path) -> None:
    entry = wt.resolve_weights("resnet50")
    weights = torchvision.models.ResNet50_Weights.DEFAULT
    assert entry.name == "ResNet50_Weights.IMAGENET1K_V2" and entry.url == weights.url
    assert entry.file_name == "resnet50-11ad3fa6.pth" and entry.sha256_prefix == "11ad3fa6"
    assert entry.cache_path == home / "resnet50-11ad3fa6.pth"
    assert (entry.resize, entry.crop) == (232, 224) and entry.size_text == "98 MB"
    assert wt.resolve_weights("resnet50", "IMAGENET1K_V1").resize == 256
    assert wt.resolve_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V1").file_name == \
        "resnet50-0676ba61.pth"
    assert wt.resolve_weights("resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V1) \
        == wt.resolve_weights("resnet50", "IMAGENET1K_V1")
    assert [e.short_name for e in wt.weights_entries("resnet101")] == [
        "IMAGENET1K_V2", "IMAGENET1K_V1"]
    with pytest.raises(ValueError, match="not resnet50 weights"):
        wt.resolve_weights("resnet50", torchvision.models.ResNet18_Weights.DEFAULT)
    with pytest.raises(ValueError, match="not resnet50 weights"):
        wt.resolve_weights("resnet50", "ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match=r"'NOPE'.*IMAGENET1K_V2"):
        wt.resolve_weights("resnet50", "NOPE")
    with pytest.raises(ValueError, match="tiny"):
        wt.resolve_weights("tiny")
    with pytest.raises(ValueError, match="SHA-256 prefix"):
        wt.WeightsEntry("resnet18", "X.Y", "https://example.invalid/resnet18.pth")


def test_mirror_and_manual_way(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = wt.resolve_weights("resnet18")
    assert entry.download_url() == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    monkeypatch.setenv(wt.MIRROR_ENV, "http://mirror.example/torch/")
    assert entry.download_url() == "http://mirror.example/torch/resnet18-f37072fd.pth"
    assert entry.url in entry.manual() and str(home / entry.file_name) in entry.manual()
    monkeypatch.setenv(wt.OFFLINE_ENV, "1")
    assert wt.offline()
    monkeypatch.setenv(wt.OFFLINE_ENV, "0")
    assert not wt.offline()


def test_registry_hook_adds_and_removes_a_default(payload: bytes, home: Path) -> None:
    entry = weights_entry(payload)
    before = wt.weights_entries("resnet18")
    wt.register_weights(entry, default=True)
    try:
        assert wt.resolve_weights("resnet18") == entry
        assert wt.resolve_weights("resnet18", "TEST_RANDOM") == entry
        assert cv.torch_cache_candidates("resnet18")[0] == home / entry.file_name
    finally:
        wt.unregister_weights(entry)
    assert wt.weights_entries("resnet18") == before
    with pytest.raises(TypeError):
        wt.register_weights("resnet18")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- download


def test_download_verifies_and_is_the_file_torchvision_uses(
        payload: bytes, good: wt.WeightsEntry, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[tuple[float, str]] = []
    with serve({good.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        path = wt.download_weights(good, progress=lambda f, m: steps.append((f, m)))
        assert server.requests == [good.file_name]
        assert wt.download_weights(good) == path  # in the cache: no second request
        assert server.requests == [good.file_name]
    assert path == home / good.file_name and path.read_bytes() == payload
    assert _leftovers(home) == [good.file_name]  # no temporary file left
    assert steps[-1][0] == 1.0 and "checksum verified" in steps[-1][1]
    assert all(0.0 <= f <= 1.0 for f, _ in steps)
    # torch.hub finds the same file where it looks (no network: the URL is unreachable)
    state = torch.hub.load_state_dict_from_url(good.url, check_hash=True, progress=False)
    assert set(state) == set(torchvision.models.resnet18().state_dict())
    # and the model initialisation reads it by name
    model = from_torchvision(MSGNConfig(backbone="resnet18", local_branches=0), "DEFAULT")
    assert torch.equal(model.stem.conv1.weight, state["conv1.weight"])


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("checksum", "failed the checksum"),
        ("truncated", "cut short"),
        ("down", "connection refused"),
        ("missing", "HTTP 404"),
    ],
)
def test_failed_downloads_leave_nothing(fault: str, words: str, payload: bytes, home: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    entry = weights_entry(payload, wrong_checksum=fault == "checksum")
    files = {} if fault == "missing" else {entry.file_name: payload}
    with serve(files, truncated={entry.file_name} if fault == "truncated" else None) as server:
        base = f"http://127.0.0.1:{closed_port()}" if fault == "down" else server.base
        monkeypatch.setenv(wt.MIRROR_ENV, base)
        with pytest.raises(wt.WeightsError, match=words) as info:
            wt.download_weights(entry, timeout=10)
    assert isinstance(info.value, wt.ChecksumError) == (fault == "checksum")
    assert info.value.manual == entry.manual() and entry.url in str(info.value)
    # behind a mirror, the way by hand names the mirror's URL first
    assert f"download {base.rstrip('/')}/{entry.file_name} (the mirror" in info.value.manual
    assert "\n" not in str(info.value)
    assert _leftovers(home) == []


# ----------------------------------------------------------------------------- hostile servers


@pytest.fixture()
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits of seconds: 1 s to connect and between reads, 1 kB/s at least."""
    monkeypatch.setattr(weights_download, "TIMEOUT", 1.0)
    monkeypatch.setattr(weights_download, "MIN_RATE", 1000)


def _fails(entry: wt.WeightsEntry, reply, home: Path, monkeypatch: pytest.MonkeyPatch,
           words: str, *, within: float = 15.0) -> wt.WeightsError:
    """Download ``entry`` from a server answering with ``reply``: a one-line WeightsError
    with ``words``, within ``within`` seconds, nothing left in the cache."""
    with serve(replies={entry.file_name: reply}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        started = time.monotonic()
        with pytest.raises(wt.WeightsError, match=words) as info:
            wt.download_weights(entry)
        took = time.monotonic() - started
        assert server.requests == [entry.file_name]
    assert took < within, took
    assert "\n" not in str(info.value) and entry.file_name in str(info.value)
    assert _leftovers(home) == []
    return info.value


@pytest.mark.usefixtures("quick")
@pytest.mark.parametrize(
    ("kind", "words"),
    [("silent", "in 1 s .*stalled"),  # connected, no headers
     ("stall", "in 1 s .*stalled"),  # headers and some bytes, then nothing
     ("trickle", "trickling")],  # 10 bytes a second, never a read timeout
)
def test_stalled_or_trickling_server_gives_up(kind: str, words: str, payload: bytes,
                                              good: wt.WeightsEntry, home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    reply = {"silent": silent, "stall": trickle(payload, first=500, step=0),
             "trickle": trickle(payload, step=1, every=0.1)}[kind]
    _fails(good, reply, home, monkeypatch, words, within=8.0)


def test_a_transfer_past_the_deadline_is_cut(payload: bytes, good: wt.WeightsEntry, home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast enough for the rate rule, too slow for the deadline."""
    monkeypatch.setattr(weights_download, "TIMEOUT", 1.0)
    monkeypatch.setattr(weights_download, "MIN_RATE", 1)
    monkeypatch.setattr(weights_download, "DEADLINE", 2.0)
    _fails(good, trickle(payload, step=200, every=0.05), home, monkeypatch,
           "took longer than 2 s", within=8.0)


def test_never_more_bytes_than_the_file_has(payload: bytes, good: wt.WeightsEntry, home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(payload) < good.max_bytes < len(payload) + 20_000  # the metadata's rounding
    # a Content-Length of 10 GB is refused before the first byte is read
    error = _fails(good, announce(payload, 10**10), home, monkeypatch, "announces 10000000000")
    assert str(good.max_bytes) in str(error)
    # no Content-Length: the download stops at the first byte past the expected size
    _fails(good, unannounced(payload + bytes(3 << 20)), home, monkeypatch,
           f"more than the {good.max_bytes} bytes")
    # an entry of unknown size: capped at MAX_UNKNOWN_BYTES
    monkeypatch.setattr(weights_catalog, "MAX_UNKNOWN_BYTES", 100_000)
    unknown = wt.WeightsEntry(good.arch, good.name, good.url, size_mb=None)
    assert unknown.max_bytes == 100_000
    _fails(unknown, unannounced(payload), home, monkeypatch, "more than the 100000 bytes")


def test_no_content_length_but_the_right_bytes_works(payload: bytes, good: wt.WeightsEntry,
                                                     home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(replies={good.file_name: unannounced(payload)}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        assert wt.download_weights(good).read_bytes() == payload


@pytest.mark.parametrize("location", ["file:///dev/zero", "ftp://127.0.0.1/x.pth",
                                      "data:,hello", "https://127.0.0.2/x.pth"])
def test_redirects_to_another_scheme_are_refused(location: str, payload: bytes,
                                                 good: wt.WeightsEntry, home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    error = _fails(good, redirect(location), home, monkeypatch, "redirected")
    assert location in str(error) and "refused" in str(error)


def test_a_redirect_within_http_is_followed(payload: bytes, good: wt.WeightsEntry, home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with serve({"elsewhere.pth": payload},
               replies={good.file_name: redirect("/elsewhere.pth", 301)}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        assert wt.download_weights(good).read_bytes() == payload
        assert server.requests == [good.file_name, "elsewhere.pth"]


@pytest.mark.parametrize("mirror", ["file:///dev/zero#", "ftp://mirror.example/torch",
                                    "/srv/weights", "http://"])
def test_a_mirror_that_is_not_http_is_refused(mirror: str, good: wt.WeightsEntry, home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wt.MIRROR_ENV, mirror)
    with pytest.raises(wt.WeightsError, match="only from http or https") as info:
        wt.download_weights(good)
    assert wt.MIRROR_ENV in str(info.value) and "\n" not in str(info.value)
    assert _leftovers(home) == []


def test_offline_stops_every_download(payload: bytes, good: wt.WeightsEntry, home: Path,
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys) -> None:
    monkeypatch.setenv(wt.OFFLINE_ENV, "1")
    with serve({good.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        with pytest.raises(wt.WeightsError, match="downloads are turned off"):
            wt.download_weights(good)
        assert cv.main(["--arch", "resnet18", "--download", "--no-progress"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "ARPVIZ_OFFLINE=1" in err[0] and good.file_name in err[0]
        assert train.main(["--model", '{"backbone": "resnet18", "local_branches": 0}', "--out",
                           str(tmp_path / "run.safetensors"), "--epochs", "1", "--limit-train",
                           "2", "--limit-val", "2", "--image-size", "32", "--device", "cpu",
                           "--no-progress", "--pretrained", "DEFAULT", "--download"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert [line for line in err.splitlines() if "error" in line][0].startswith(
            "arpviz-train: error: downloads are turned off")
        assert server.requests == []  # the mirror heard nothing
    assert _leftovers(home) == []


def test_stale_partials_are_removed_by_the_next_download(payload: bytes, good: wt.WeightsEntry,
                                                         home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir(parents=True)
    stale = [home / f".{good.file_name}.0123456789ab.partial",
             home / ".resnet50-11ad3fa6.pth.ba9876543210.partial"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)  # what a killed download left
    keep = [home / "resnet50-11ad3fa6.pth.0123abcd.partial",  # torch.hub's own, not ours
            home / "notes.txt"]
    for path in keep:
        path.write_text("keep")
    with serve({good.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        wt.download_weights(good)
    assert _leftovers(home) == sorted([good.file_name, *(p.name for p in keep)])


def test_a_wrong_file_put_in_the_cache_by_hand_is_not_converted(
        payload: bytes, good: wt.WeightsEntry, home: Path, capsys) -> None:
    home.mkdir(parents=True)
    (home / good.file_name).write_bytes(weights_payload("resnet18", seed=4))  # another file
    assert cv.main(["--arch", "resnet18", "--no-progress"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "SHA-256 begins" in lines[0] and good.sha256_prefix in lines[0]
    assert _leftovers(home.parents[2] / "arpviz" / "converted") == []
    # the right file converts, and the checkpoint records the SHA-256 it came from
    (home / good.file_name).write_bytes(payload)
    assert cv.main(["--arch", "resnet18", "--no-progress"]) == 0
    out = Path(capsys.readouterr().out.strip())
    meta = ckpt.read_meta(out)
    assert meta.dataset["weights_sha256"] == hashlib.sha256(payload).hexdigest()


def _wait_for(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_during_a_download_removes_the_partial(signum: int, tmp_path: Path) -> None:
    """``python -m arpviz.convert --download`` stopped mid-download: it exits with one line
    on stderr, no traceback, and no temporary file left in the torch cache."""
    entry = wt.resolve_weights("resnet18")  # torchvision's own name; the bytes are made up
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    reply = trickle(bytes(4 << 20), first=300_000, step=0,
                    length=int(entry.size_mb * 2**20))
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"),
           "ARPVIZ_CACHE": str(tmp_path / "arpviz"), "PYTHONUNBUFFERED": "1"}
    env.pop(wt.OFFLINE_ENV, None)
    with serve(replies={entry.file_name: reply}) as server:
        env[wt.MIRROR_ENV] = server.base
        process = subprocess.Popen(
            [sys.executable, "-m", "arpviz.convert", "--arch", "resnet18", "--download",
             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            def receiving() -> bool:
                found = list(cache.glob(".*.partial")) if cache.is_dir() else []
                return bool(found) and found[0].stat().st_size >= 300_000

            assert _wait_for(receiving, 120), "the download never started"
            process.send_signal(signum)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    lines = err.strip().splitlines()
    assert process.returncode == 128 + signum, (process.returncode, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"stopped by {signal.Signals(signum).name}" in lines[0]
    assert out == "" and _leftovers(cache) == []


# ----------------------------------------------------------------------------- the CLIs


def test_convert_download_then_reuse(payload: bytes, good: wt.WeightsEntry, home: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert cv.main(["--arch", "resnet18", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("arpviz-convert: error:")
    assert "--download" in err[0] and good.url in err[0] and str(home) in err[0]
    with serve({good.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        assert cv.main(["--arch", "resnet18", "--download", "--no-progress"]) == 0
        out = Path(capsys.readouterr().out.strip())
        assert cv.main(["--arch", "resnet18", "--download", "--no-progress"]) == 0
        assert Path(capsys.readouterr().out.strip()) == out
        assert server.requests == [good.file_name]  # fetched once, then the cache
    meta = ckpt.read_meta(out)
    assert meta.dataset["source"] == good.name and meta.class_names == tuple(CATEGORIES)
    assert (meta.dataset["resize"], meta.dataset["keep_aspect"]) == (256, True)
    assert meta.recipe["tool"] == "arpviz-convert"
    assert out.parent == home.parents[2] / "arpviz" / "converted"


@pytest.mark.parametrize("fault", ["checksum", "truncated", "down"])
def test_convert_download_failure_is_one_line(fault: str, payload: bytes, home: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    entry = weights_entry(payload, wrong_checksum=fault == "checksum")
    wt.register_weights(entry, default=True)
    try:
        with serve({entry.file_name: payload},
                   truncated={entry.file_name} if fault == "truncated" else None) as server:
            base = f"http://127.0.0.1:{closed_port()}/" if fault == "down" else server.base
            monkeypatch.setenv(wt.MIRROR_ENV, base)
            code = cv.main(["--arch", "resnet18", "--download", "--no-progress"])
    finally:
        wt.unregister_weights(entry)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("arpviz-convert: error:")
    if fault == "checksum":
        assert "checksum" in lines[0]
    assert entry.url in lines[0] and str(home / entry.file_name) in lines[0]  # the manual way
    assert f"download {base.rstrip('/')}/{entry.file_name} (the mirror" in lines[0]
    assert _leftovers(home) == []
    assert _leftovers(home.parents[2] / "arpviz" / "converted") == []


def test_convert_download_with_weights_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cv.main(["--arch", "resnet18", "--download", "--weights", str(tmp_path / "w.pth")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: arpviz-convert") and "--download" in err.splitlines()[-1]


def test_train_pretrained_download_errors(payload: bytes, bad: wt.WeightsEntry, home: Path,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys) -> None:
    base = ["--model", '{"backbone": "resnet18", "local_branches": 0}', "--out",
            str(tmp_path / "run.safetensors"), "--epochs", "1", "--limit-train", "2",
            "--limit-val", "2", "--image-size", "32", "--device", "cpu", "--no-progress"]
    # not in the cache and no --download: a usage error that says how
    with pytest.raises(SystemExit) as info:
        train.main([*base, "--pretrained", "DEFAULT"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: arpviz-train") and "add --download" in err
    # --download without a weights name
    with pytest.raises(SystemExit):
        train.main([*base, "--download"])
    assert "--download needs --pretrained NAME" in capsys.readouterr().err
    # a download whose checksum fails: one line, status 1, nothing kept, nothing trained
    with serve({bad.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        code = train.main([*base, "--pretrained", "DEFAULT", "--download"])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert code == 1 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("arpviz-train: error:")
    assert "checksum" in lines[0]
    assert _leftovers(home) == [] and not (tmp_path / "run.safetensors").exists()


def test_png_or_empty_weights_are_not_a_state_dict(tmp_path: Path, capsys) -> None:
    from PIL import Image

    png = tmp_path / "y.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path, what in ((png, "PNG image"), (empty, "empty")):
        out = tmp_path / "o.safetensors"
        code = cv.main(["--arch", "resnet18", "--weights", str(path), "--out", str(out),
                        "--no-progress"])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in err
        assert f"{path.name} is not a PyTorch state dict" in lines[0] and what in lines[0]
        assert not out.exists()


def test_sidebar_offers_every_resnet_ready_or_to_download(
        payload: bytes, good: wt.WeightsEntry, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from arpviz.explorer import catalog

    assert catalog.imagenet_offers() == []  # the cached ones only: none
    offers = catalog.imagenet_offers(downloadable=True)
    assert [o.arch for o in offers] == list(cv.ARCHITECTURES)
    assert not any(o.ready for o in offers)
    statuses = {o.arch: o.status for o in offers}
    assert statuses["resnet50"] == "download 98 MB"
    assert statuses["resnext101_32x8d"] == "download 340 MB"
    first = offers[0]
    assert first.entry == good and first.weights == home / good.file_name
    assert good.url in first.manual and str(first.weights) in first.manual
    monkeypatch.setenv(wt.OFFLINE_ENV, "1")
    assert not catalog.downloads_offered()
    monkeypatch.delenv(wt.OFFLINE_ENV)
    assert catalog.downloads_offered()
    home.mkdir(parents=True)
    (home / good.file_name).write_bytes(payload)
    [ready] = catalog.imagenet_offers()
    assert (ready.arch, ready.ready, ready.status) == ("resnet18", True, "ready")
