"""``arpviz-app``: start the Streamlit app from anywhere, on the bundled default checkpoint.

``arpviz-app [streamlit flags]`` is ``streamlit run <arpviz>/webapp/app.py [streamlit flags]``
with the app's own settings (the 256 MB upload cap, no usage statistics) as defaults that any
flag given overrides, e.g. ``arpviz-app --server.port 8600 --server.headless true``. It needs
the app's extra: ``pip install "arpviz[app]"``.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence

__all__ = ["DEFAULT_FLAGS", "main", "streamlit_args"]

PROG = "arpviz-app"
# the app's settings (the repository's .streamlit/config.toml), for runs outside the checkout
DEFAULT_FLAGS: dict[str, str] = {
    "--server.maxUploadSize": "256",
    "--browser.gatherUsageStats": "false",
    "--global.disableWidgetStateDuplicationWarning": "true",
}
_FLAG_HELP = textwrap.fill(
    'passed to "streamlit run", e.g. --server.port 8600 --server.headless true ("streamlit run '
    '--help" lists them); a flag given replaces the app\'s own setting of it (default: '
    + ", ".join(f"{k} {v}" for k, v in DEFAULT_FLAGS.items()) + ")",
    width=78, initial_indent=" " * 18, subsequent_indent=" " * 18)
_HELP = f"""usage: {PROG} [-h] [--version] [STREAMLIT_FLAG ...]

Start the arpviz app (Streamlit) on the bundled default checkpoint.

options:
  -h, --help      show this help message and exit
  --version       show program's version number and exit
  STREAMLIT_FLAG{_FLAG_HELP[16:]}

Details: docs/app.md, docs/install.md.
"""


def streamlit_args(argv: Sequence[str]) -> list[str]:
    """The argument list of ``streamlit`` for ``arpviz-app argv``: ``run``, the app script,
    the defaults that ``argv`` does not set, then ``argv``."""
    from arpviz.webapp import APP_SCRIPT

    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    defaults = [part for flag, value in DEFAULT_FLAGS.items() if flag not in given
                for part in (flag, value)]
    return ["run", str(APP_SCRIPT), *defaults, *argv]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_HELP, end="")
        return 0
    if argv and argv[0] == "--version":
        from arpviz import __version__

        print(f"{PROG} {__version__}")
        return 0
    try:
        from streamlit.web import cli as streamlit_cli
    except ImportError:
        print(f'{PROG}: the app needs Streamlit and plotly: pip install "arpviz[app]"',
              file=sys.stderr)
        return 2
    sys.argv = ["streamlit", *streamlit_args(argv)]
    return int(streamlit_cli.main(prog_name="streamlit") or 0)


if __name__ == "__main__":
    raise SystemExit(main())
