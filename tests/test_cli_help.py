"""Every command behaves like its peers: ``--version`` prints its name and
``arpviz.__version__``; ``--help`` is plain text (no Sphinx/reST markup) and states each flag's
default once, a required flag's not at all."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

import arpviz

ROOT = Path(__file__).resolve().parents[1]
#: the commands that are modules run with ``python -m``, beside pyproject's [project.scripts]
MODULE_COMMANDS = {
    "python -m arpviz.simulate": "arpviz.simulate:main",
    "python -m arpviz.analysis.paired": "arpviz.analysis.paired:main",
}
MARKUP = (":mod:", ":class:", ":func:", ":meth:", ":data:", ":attr:", "``")


def _commands() -> dict[str, str]:
    """pyproject.toml's [project.scripts] (read as text: tomllib is Python 3.11's) and the
    module commands."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', section, flags=re.M))
    return {**scripts, **MODULE_COMMANDS}


COMMANDS = _commands()


def _main(command: str) -> Callable[[Sequence[str]], int | None]:
    module, name = COMMANDS[command].split(":")
    return getattr(importlib.import_module(module), name)


def _run(command: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``command argv`` in this process; its standard output (exit status 0 checked)."""
    try:
        code = _main(command)(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    return captured.out


def _entries(text: str) -> dict[str, str]:
    """The help's arguments: invocation (``--out DIR``, ``-h, --help``, ``checkpoint``) -> its
    help, continuation lines joined."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if re.match(r"^  \S", line):
            current, *rest = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            entries[current] = rest[0] if rest else ""
        elif current is not None and line.startswith("    ") and line.strip():
            entries[current] += " " + line.strip()
        elif not line.strip() or not line.startswith(" "):
            current = None
    return {invocation: help_text.strip() for invocation, help_text in entries.items()}


def _usage(text: str) -> str:
    return text.split("\n\n", 1)[0]


def _required_flags(usage: str) -> set[str]:
    """The flags the usage line shows outside brackets."""
    outside = usage
    while re.search(r"\[[^\[\]]*\]", outside):
        outside = re.sub(r"\[[^\[\]]*\]", "", outside)
    return set(re.findall(r"(?<!\S)(--[a-z][\w-]*)", outside))


def _flag(invocation: str) -> str:
    return invocation.split(",")[-1].split()[0]


def test_every_script_and_module_command_is_covered() -> None:
    assert len(COMMANDS) == 8
    assert {"arpviz-app", "arpviz-train", "arpviz-evaluate", "arpviz-convert", "arpviz-explain",
            "arpviz-analysis"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_version(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(command, ["--version"], capsys) == f"{command} {arpviz.__version__}\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_plain_and_states_each_default_once(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(command, ["--help"], capsys)
    assert text.startswith(f"usage: {command} ")
    for markup in MARKUP:
        assert markup not in text, f"{command} --help shows {markup!r}"
    assert "(default: None)" not in text
    assert "--version" in _entries(text)
    description = text.split("\n\n")[1].replace("e.g.", "eg")
    assert 1 <= len(re.findall(r"[.?!](?:\s|$)", description)) <= 3, description
    usage = _usage(text)
    required = _required_flags(usage)
    optional_positionals = set(re.findall(r"\[([A-Za-z_]+)\]", usage))
    for invocation, help_text in _entries(text).items():
        stated = len(re.findall(r"\bdefault:", help_text))
        assert stated <= 1, f"{command} {invocation}: {stated} defaults in {help_text!r}"
        name = _flag(invocation)
        if name in required:
            assert "default" not in help_text, f"{command} {invocation} is required"
        elif name.startswith("-") and len(invocation.split(",")[-1].split()) > 1:
            assert stated == 1, f"{command} {invocation} takes a value: state its default"
        elif name in optional_positionals:
            assert stated == 1, f"{command} {invocation} may be left out: state its default"


def test_the_parsing_helpers_read_argparse_help() -> None:
    text = ("usage: x [-h] [--limit N] [--k-values K [K ...]] --out DIR [checkpoint]\n\n"
            "Does it.\n\npositional arguments:\n  checkpoint     a file (default: the bundled)\n"
            "\noptions:\n  -h, --help     show\n  --limit N      first N\n"
            "                 images (default: all)\n  --k-values K [K ...]\n"
            "                 k (default: 1 2)\n  --out DIR      where\n")
    entries = _entries(text)
    assert entries["--limit N"] == "first N images (default: all)"
    assert entries["--k-values K [K ...]"] == "k (default: 1 2)"
    assert _required_flags(_usage(text)) == {"--out"}
    assert _flag("-h, --help") == "--help"
