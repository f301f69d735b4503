"""The ``attend-search`` command: a thin layer over the library.

Each command module has a ``register(subparsers)``. User mistakes end with exit code 2 and
one line naming the file and field; ``--debug`` shows the traceback instead.

The command line must start at once (``--help``, a typo, ``presets``, ``space``: well under
a second), so a command module imports at its top only what building the parser needs
(argparse, ``.common``, light modules such as ``search_space.space``), and each command
function imports the rest (PyTorch, Optuna, the evaluators, ``studies``) in its body::

    def cmd_report(args):
        from ..studies.report import write_report     # Optuna, plotly, torch: only here
        ...

``tests/test_cli_startup.py`` holds every command module to this.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__, interrupts
from ..errors import AttendSearchError
from . import (
    evaluate,
    latency,
    output_commands,
    proxy,
    refine,
    spec_commands,
    study_commands,
    train,
)

COMMAND_MODULES = [
    spec_commands,
    evaluate,
    latency,
    proxy,
    study_commands,
    output_commands,
    train,
    refine,
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attend-search",
        description="Design fast attention-condenser backbones for edge devices.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return p


def _storage_error(exc: Exception) -> AttendSearchError | None:
    """What a database error means for the user; the storage code is loaded only when a
    command got that far."""
    if "sqlalchemy" not in sys.modules:
        return None
    from ..studies.storage.store import storage_error

    return storage_error(exc)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: `refine --jobs` repeats it
    interrupts.install()  # Ctrl-C and SIGTERM: the running trial is closed as failed
    try:
        args.func(args)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()  # (before `Exception`, which would take it for a failure)
    except Exception as exc:
        error = exc if isinstance(exc, AttendSearchError) else _storage_error(exc)
        if error is None or args.debug:
            raise
        print(f"attend-search: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if getattr(args, "spawned", False):  # the `run --jobs` that started it speaks
            return 130
        resume = getattr(args, "resume", None)
        kept = getattr(
            args, "kept", "the running trial was closed as failed and completed trials are kept"
        )
        print(
            "interrupted" + (f": {kept}; to resume: {resume}" if resume else ""),
            file=sys.stderr,
        )
        return 130
    return 0
