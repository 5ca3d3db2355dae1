"""The Adaptivity page under AppTest, on the tiny untrained checkpoint (16 images)."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import image_title, shown, state, texts, view
from helpers import APP, APP_TIMEOUT, run_app
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


@pytest.fixture()
def adapt_env(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARPVIZ_CACHE", str(app_env / "cache"))  # the analysis cache
    return app_env


def _open() -> AppTest:
    at = run_app(AppTest.from_file(APP, default_timeout=APP_TIMEOUT))
    at.switch_page("pages/adaptivity.py")
    state(at).adaptivity.limit = 16  # the first 16 images (the widget follows the state)
    return run_app(at)


def test_adaptivity_page_analyses_and_opens_an_image_in_explore(adapt_env: Path) -> None:
    at = _open()
    assert not at.error, [e.value for e in at.error]
    report = shown(at).report
    assert report.count == 16 and report.split == "val" and report.tau == 1.0
    assert set(report.stages) == {"conv3", "conv4.local0"}
    assert list((adapt_env / "cache" / "analysis").glob("*.json"))  # cached on disk
    text = " ".join(texts(at.markdown))
    assert "Conv4 local 0 (ARP) on this checkpoint:" in text and "Spearman" in text
    assert "top-1" in text
    charts = at.get("plotly_chart")
    # scatter, k curves, placement, contrast, and the committed runs side by side (if any)
    from arpviz.explorer import adaptivity as ad

    side_by_side = bool(ad.comparison_rows(ad.wide_comparison()))
    from arpviz.explorer.ablation import paired_ablation

    ablation = paired_ablation()  # the committed paired runs, when there are some
    paired = 0 if ablation is None else 1 + bool(ablation.decomposition)
    assert len(charts) == 4 + side_by_side + paired
    # the correlations (or tucked away), the runs side by side, the paired rows and pairs
    assert len(at.dataframe) == 1 + side_by_side + 2 * (ablation is not None)
    # the fallback of a point pick: open image 5 in Explore
    at.number_input(key="adapt.index").set_value(5)
    at.button(key="adapt_open").click()
    run_app(at)
    assert at.number_input(key="image.sample").value == 5
    assert view(at) is not None  # Explore ran on it
    assert image_title(at).startswith("val #5, ")
    assert any("val #5" in c for c in texts(at.caption)), texts(at.caption)


def test_tau_and_split_controls_recompute(adapt_env: Path) -> None:
    at = _open()
    first = shown(at).report
    at.select_slider(key="adapt.tau").set_value(4.0)
    run_app(at)
    sharp = shown(at).report
    assert sharp.tau == 4.0 and sharp is not first
    assert "beyond the paper" in " ".join(texts(at.markdown))
    at.radio(key="adapt.split").set_value("test")
    run_app(at)
    assert shown(at).report.split == "test"
    assert at.number_input(key="adapt.index").disabled  # Explore shows val only


def test_explore_tau_is_an_explicit_extension(adapt_env: Path) -> None:
    at = run_app(AppTest.from_file(APP, default_timeout=APP_TIMEOUT))
    control = at.select_slider(key="tau")
    assert "1 = the paper" in control.label and control.value == 1.0
    assert not view(at).overrides
    trained = view(at).stages["conv3"].confidence
    control.set_value(8.0)
    run_app(at)
    sharp = view(at)
    assert {o.tau for o in sharp.overrides.values()} == {8.0}
    assert set(sharp.overrides) == {"conv3", "conv4.local0"}
    assert sharp.stages["conv3"].confidence.std() > trained.std()
    at.button(key="reset").click()
    run_app(at)
    assert at.select_slider(key="tau").value == 1.0
    assert not view(at).overrides
