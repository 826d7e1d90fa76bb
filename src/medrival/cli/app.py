"""The ``medrival`` command line: a thin layer over the Python API.

Heavy libraries (torch, open_clip) are imported inside commands, so ``medrival --help`` stays fast.
User errors exit with code 2 and a one-paragraph message; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import sys
import traceback
from typing import Optional

import typer

from medrival import __version__
from medrival.core.errors import MedrivalError

app = typer.Typer(
    name="medrival", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Does an efficiently fine-tuned generalist vision-language model rival a specialist medical one?\n\n"
         "Examples:\n\n  medrival demo\n\n  medrival run study.yaml --out results/\n\n  medrival models")
_state = {"debug": False, "interrupt_reported": False}
INTERRUPTED = 130  # the shell convention for a process stopped by Ctrl-C (128 + SIGINT)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medrival {__version__}")
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    _state["debug"] = _state["debug"] or debug


def _register_commands() -> None:
    from medrival.cli import (catalog_commands, compare_commands, dataset_commands,  # noqa: F401 (register on import)
                              export_commands, report_commands, status_commands, store_commands, study_commands)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app and exit with its code (user errors: 2 without a traceback; Ctrl-C: 130)."""
    _register_commands()
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is global but may be written anywhere (``medrival run s.yaml --debug``): Click would reject it
    # after the command name, so take it out here (arguments after a "--" separator are left alone).
    end = args.index("--") if "--" in args else len(args)
    _state["debug"] = "--debug" in args[:end]
    _state["interrupt_reported"] = False
    args = [a for a in args[:end] if a != "--debug"] + args[end:]
    sys.exit(_exit_code(args))


def _exit_code(args: list[str]) -> int:
    """Run the app and return the process's exit code. Without standalone mode typer *returns* the code of a
    ``typer.Exit`` raised in a command, and turns Ctrl-C into a returned 130, so the value matters."""
    try:
        code = app(args=args, prog_name="medrival", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except typer.exceptions.TyperException as error:  # usage errors: unknown command or option, bad value
        error.show()
        return getattr(error, "exit_code", 2)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return INTERRUPTED
    except KeyboardInterrupt:
        code = INTERRUPTED
    except MedrivalError as error:
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"Error: {error}", err=True)
        return 2
    code = code if isinstance(code, int) else 0  # a command's own return value is not an exit code
    if code == INTERRUPTED and not _state.get("interrupt_reported"):
        typer.echo("Interrupted.", err=True)
    return code


def interrupt_reported() -> None:
    """A command printed its own Ctrl-C message (e.g. what a study saved): do not add the generic one."""
    _state["interrupt_reported"] = True
