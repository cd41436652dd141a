"""The CLI loads a command's module only when that command runs; ``--help`` lists them all.

``COMMANDS`` (what ``cloudctl --help`` lists without importing anything) must say exactly
what the command modules register: the same names, modules and one-line help.
"""

from __future__ import annotations

import subprocess
import sys

import typer
import typer.main

from cloudctl.cli import main


def test_the_command_table_says_what_the_modules_register() -> None:
    registered: dict[str, tuple[str, str]] = {}
    for module_name in dict.fromkeys(module for module, _help in main.COMMANDS.values()):
        declared = typer.Typer(rich_markup_mode=main.RICH_MARKUP_MODE)
        dotted = module_name if "." in module_name else f"cloudctl.cli.{module_name}"
        __import__(dotted, fromlist=["register"]).register(declared)
        group = typer.main.get_group(declared)
        for name, command in group.commands.items():
            registered[name] = (module_name, command.get_short_help_str(limit=1000))
    assert registered == main.COMMANDS


def test_help_lists_every_command_without_importing_any_command_module() -> None:
    probe = (
        "import sys\n"
        "from cloudctl.cli import main\n"
        "try:\n"
        "    main.command().main(['--help'], prog_name='cloudctl')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('cloudctl.cli.commands_', 'rich', "
        "'sqlalchemy', 'pydantic', 'cloudctl.services')))\n"
        "print('HEAVY', heavy)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    for name, (_module, short_help) in main.COMMANDS.items():
        assert name in finished.stdout
        assert short_help.split()[0] in finished.stdout
    assert "HEAVY []" in finished.stdout


def test_a_command_runs_after_its_module_is_loaded_on_demand() -> None:
    group = typer.main.get_command(main.app)
    assert isinstance(group, main.LazyGroup)
    context = typer.Context(group)
    assert "dept" not in group.commands
    dept = group.get_command(context, "dept")
    assert dept is not None
    assert "quota" in group.commands  # its module registers both
    assert group.get_command(context, "no-such-command") is None


def _options_read(argv: list[str]) -> str:
    """Run the root command with ``argv`` in a fresh interpreter; what it printed, and whether
    pydantic was imported to read the options."""
    probe = (
        "import sys\n"
        "from cloudctl.cli import main\n"
        "import typer.core\n"
        "from typer._click import globals as click\n"
        "group = main.command()\n"
        "def echo() -> None:\n"
        "    state = click.get_current_context().find_root().params\n"
        "    print({name: repr(state[name]) for name in ('home', 'output_format', 'database_url')})\n"
        "group.add_command(typer.core.TyperCommand('echo-options', callback=echo), 'echo-options')\n"
        "try:\n"
        f"    group.main({argv!r}, prog_name='cloudctl')\n"
        "except SystemExit as done:\n"
        "    print('EXIT', done.code)\n"
        "print('PYDANTIC', any(m.split('.')[0] == 'pydantic' for m in sys.modules))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    return finished.stdout + finished.stderr


def test_plain_options_are_read_without_pydantic_and_to_the_same_values() -> None:
    printed = _options_read(["--home", "/tmp/h", "-o", "json", "--database-url", "sqlite://", "echo-options"])
    assert "'home': \"PosixPath('/tmp/h')\"" in printed
    assert "'output_format': \"<Format.JSON: 'json'>\"" in printed
    assert "'database_url': \"'sqlite://'\"" in printed
    assert "EXIT 0" in printed
    assert "PYDANTIC False" in printed


def test_a_wrong_choice_is_refused_in_typer_own_words() -> None:
    printed = _options_read(["-o", "jsn", "echo-options"])
    assert "EXIT 2" in printed
    assert "'jsn' is not one of" in printed
    assert "error: output: " in printed  # one line naming the option (cli.main.usage_line)
