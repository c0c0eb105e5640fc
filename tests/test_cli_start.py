"""`screener --help` starts without the engine: what it lists, and what it does not import."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from screener.cli import build_parser, commands_parser

from conftest import ROOT

HEAVY = ("durable_rules_engine", "durable", "pint", "rich", "jinja2", "yaml", "prompt_toolkit", "lark",
         "screener.engine", "screener.rules.units")


def test_the_quick_help_is_the_full_help():
    """`screener --help` is answered from the command list alone; it reads exactly as the help
    of the full command line, every command in order with its own line."""
    assert commands_parser().format_help() == build_parser().format_help()


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []], ids=["help", "version", "no command"])
def test_help_imports_no_engine(argv):
    code = ("import sys\nfrom screener.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nimport json\nprint(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert not [m for m in HEAVY if m in loaded]


def test_a_command_still_reads_its_own_arguments(tmp_path, capsys):
    """Past the command name, the full command line parses as before: a wrong option of a
    command is a usage error naming it (exit 2)."""
    from screener.cli import main

    with pytest.raises(SystemExit) as ended:
        main(["batch", str(tmp_path / "in.csv"), "--no-such-option"])
    assert ended.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err
