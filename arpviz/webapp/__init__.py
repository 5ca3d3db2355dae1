"""The Streamlit app as the wheel carries it: ``app.py`` and ``pages/`` of the repository
(links in a checkout, copies in a wheel); :mod:`arpviz.app_launcher` runs it."""

from pathlib import Path

__all__ = ["APP_SCRIPT"]

APP_SCRIPT = Path(__file__).resolve().parent / "app.py"
