"""What every command's parser shares: a plain description, a closing line naming its docs and
``--version`` (``arpviz-train 0.3.0``)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["command_parser"]


def command_parser(prog: str, description: str, epilog: str | None = None,
                   **kwargs: Any) -> argparse.ArgumentParser:
    """An ``argparse`` parser for command ``prog`` with ``--version``; ``kwargs`` go to
    :class:`argparse.ArgumentParser` (``formatter_class``, ...)."""
    from arpviz import __version__

    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     **kwargs)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser
