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
_state = {"debug": False}


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
                              report_commands, study_commands)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app, turning user errors into exit code 2 without a traceback."""
    _register_commands()
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is global but may be written anywhere (``medrival run s.yaml --debug``): Click would reject it
    # after the command name, so take it out here (arguments after a "--" separator are left alone).
    end = args.index("--") if "--" in args else len(args)
    _state["debug"] = "--debug" in args[:end]
    args = [a for a in args[:end] if a != "--debug"] + args[end:]
    try:
        app(args=args, prog_name="medrival", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.exceptions.TyperException as error:  # usage errors: unknown command or option, bad value
        error.show()
        sys.exit(getattr(error, "exit_code", 2))
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("Interrupted: finished cells are saved; run the same command again to resume.", err=True)
        sys.exit(130)
    except MedrivalError as error:
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"Error: {error}", err=True)
        sys.exit(2)
