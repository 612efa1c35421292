"""The failures a user can cause, each with its exit code.

The command line prints their message as one ``error:`` line and exits with their ``exit_code``
(``python -m harness --help`` lists the codes). Anything else is a bug and keeps its traceback.
"""


class BadInput(ValueError):
    """A bad configuration: command-line value, cell config or params.yaml (exit 2)."""

    exit_code = 2


class BadData(BadInput):
    """A data file that is missing, unreadable or invalid (wrong columns, labels out of range) (exit 4)."""

    exit_code = 4


class Unwritable(BadInput):
    """An output (file or folder) that cannot be written (exit 5)."""

    exit_code = 5


class BadResults(BadInput):
    """A results file (records, cells.csv, summary.csv, a --results CSV) missing or unreadable (exit 6)."""

    exit_code = 6


class MethodChanged(BadInput):
    """The method's code is not the code recorded for METHOD_VERSION: ``grid`` and ``cell`` run no cell (exit 7)."""

    exit_code = 7


# (exit code, meaning) as the command line's --help and the README list them
EXIT_CODES = (
    (0, "success"),
    (1, "unexpected error (a bug: the traceback is printed; please report it)"),
    (2, "bad input: a command-line value, cell config or params.yaml"),
    (3, "the cell ran but diverged (non-finite loss); its record is written with status 'diverged'"),
    (BadData.exit_code, "data files missing, unreadable or invalid (`dvc pull` / `dvc checkout data`)"),
    (Unwritable.exit_code, "an output file or folder cannot be written"),
    (BadResults.exit_code, "a results file is missing or unreadable (run the step that writes it)"),
    (MethodChanged.exit_code, "`grid`, `cell`: the method's code changed since METHOD_VERSION was recorded; "
                              "no cell ran (bump METHOD_VERSION, or record a refactor: `method-digest --write`)"),
)
