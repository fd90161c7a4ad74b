"""Course mode: student copies of the notebooks, and grading by hidden tests.

The notebooks mark their exercises the way nbgrader does, so a teacher's
nbgrader takes them as they are:

* an *answer cell* has ``metadata.nbgrader`` with ``"solution": true``, and its
  solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
* a *test cell* has ``"grade": true``, ``"locked": true``, its ``"points"`` and a
  ``"grade_id"`` (the exercise's name); tests between ``### BEGIN HIDDEN TESTS``
  and ``### END HIDDEN TESTS`` are removed from the students' copies.

This module does the two steps a course needs without nbgrader's server and
database (``lars-ref exercises make`` and ``lars-ref exercises grade``):

* :func:`student_copy` replaces every solution by ``raise NotImplementedError``,
  removes the hidden tests and clears all outputs;
* :func:`grade_notebook` puts the teacher's test cells (hidden tests included)
  back into a student's notebook, runs it with nbclient, and gives each test
  cell its points when it raises no error, none otherwise (nbgrader's rule).
  Cells after the last test cell cannot change a score, so they are not run.

Introduced in ``docs/course.md``.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import NamedTuple

from lars_ref.errors import UserError

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
CELL_TIMEOUT_S = 600
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


class ExerciseError(UserError):
    """A notebook given to ``lars-ref exercises`` cannot be read or graded."""


class Score(NamedTuple):
    """The score of one exercise (one test cell) in one student's notebook."""
    notebook: str
    exercise: str      # the test cell's grade_id
    points: float
    max_points: float
    error: str         # the error's name and message ("" when the tests passed)


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer_cell(cell) -> bool:
    """An nbgrader solution cell (``"solution": true``)."""
    return bool(_nbgrader(cell).get("solution"))


def is_test_cell(cell) -> bool:
    """An nbgrader autograded test cell (``"grade": true`` on a code cell)."""
    return cell.get("cell_type") == "code" and bool(_nbgrader(cell).get("grade"))


def _replace_regions(source: str, begin: str, end: str, stub: str | None) -> str:
    """Replace each ``begin`` .. ``end`` block (markers included) by ``stub``."""
    pattern = re.compile(
        rf"^([ \t]*){re.escape(begin)}.*?^[ \t]*{re.escape(end)}[ \t]*\n?",
        re.DOTALL | re.MULTILINE)

    def replace(match):
        if stub is None:
            return ""
        indent = match.group(1)
        return "".join(f"{indent}{line}\n" for line in stub.splitlines())

    return pattern.sub(replace, source).rstrip("\n")


def student_copy(notebook):
    """The student's version of a teacher's notebook (nbformat node, copied)."""
    import nbformat

    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        if is_answer_cell(cell):
            cell.source = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION,
                                           STUB)
        if is_test_cell(cell):
            cell.source = _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return copy


def exercise_notebooks(directory=NOTEBOOKS_DIR) -> list:
    """The ``*.ipynb`` files of ``directory`` that hold at least one test cell."""
    import nbformat

    found = []
    for path in sorted(Path(directory).glob("*.ipynb")):
        if any(is_test_cell(c) for c in nbformat.read(path, as_version=4).cells):
            found.append(path)
    return found


def make_assignments(out_dir, source_dir=NOTEBOOKS_DIR) -> list:
    """Write the student copy of every exercise notebook into ``out_dir``."""
    import nbformat

    sources = exercise_notebooks(source_dir)
    if not sources:
        raise ExerciseError(f"no notebook with nbgrader test cells in {source_dir}; "
                            "pass the notebooks folder with --source")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path in sources:
        target = Path(out_dir) / path.name
        nbformat.write(student_copy(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def _read(path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as err:
        raise ExerciseError(f"cannot read notebook {path}: {err}") from None


def graded_version(student, teacher):
    """The student's cells with the teacher's test cells, up to the last test cell."""
    import nbformat

    tests = {_nbgrader(c)["grade_id"]: c for c in teacher.cells if is_test_cell(c)}
    graded = nbformat.from_dict(student)
    cells = [tests.get(_nbgrader(c).get("grade_id"), c) if is_test_cell(c) else c
             for c in graded.cells]
    last = max((i for i, c in enumerate(cells) if is_test_cell(c)), default=-1)
    graded.cells = [nbformat.from_dict(c) for c in cells[:last + 1]]
    return graded, tests


def _cell_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:200]
    return ""


def grade_notebook(student_path, source_dir=NOTEBOOKS_DIR) -> list:
    """Run the teacher's tests in one student notebook; return a :class:`Score` each."""
    from nbclient import NotebookClient

    teacher_path = Path(source_dir) / Path(student_path).name
    if not teacher_path.exists():
        raise ExerciseError(f"{student_path}: no teacher's notebook named "
                            f"{teacher_path.name} in {source_dir}; keep the file name "
                            "of the handed-out copy, or pass --source")
    graded, tests = graded_version(_read(student_path), _read(teacher_path))
    NotebookClient(graded, timeout=CELL_TIMEOUT_S, allow_errors=True,
                   resources={"metadata": {"path": str(Path(student_path).parent)}}
                   ).execute()
    ran = {_nbgrader(c)["grade_id"]: c for c in graded.cells if is_test_cell(c)}
    scores = []
    for grade_id, test in tests.items():
        points = float(_nbgrader(test).get("points", 0))
        cell = ran.get(grade_id)
        error = "test cell missing" if cell is None else _cell_error(cell)
        scores.append(Score(str(student_path), grade_id, 0.0 if error else points,
                            points, error))
    return scores


def scores_csv(scores) -> str:
    """The scores as CSV: notebook, exercise, points, max_points, error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(Score._fields)
    writer.writerows(scores)
    return buffer.getvalue()


def scores_table(scores) -> str:
    """One line per exercise and a total per notebook, for the terminal."""
    lines, totals = [], {}
    for s in scores:
        mark = "ok" if not s.error else s.error
        lines.append(f"{s.notebook}  {s.exercise:<24} {s.points:g}/{s.max_points:g}  "
                     f"{mark}")
        got, most = totals.get(s.notebook, (0.0, 0.0))
        totals[s.notebook] = (got + s.points, most + s.max_points)
    for notebook, (got, most) in totals.items():
        lines.append(f"{notebook}  total {got:g}/{most:g}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------
# Command line: lars-ref exercises make OUT | grade NOTEBOOK...
# ----------------------------------------------------------------------------------
def register(commands) -> None:
    """Add ``exercises make`` and ``exercises grade`` to the ``lars-ref`` command tree."""
    parser = commands.add_parser(
        "exercises", help="course mode: make student copies, grade their notebooks",
        description="Course mode (docs/course.md): write the student copies of the "
                    "exercise notebooks, or grade students' notebooks with the "
                    "hidden tests.\n\nexample:  lars-ref exercises make handout/")
    actions = parser.add_subparsers(title="actions", metavar="<action>", required=True)
    make = actions.add_parser(
        "make", help="write student copies (solutions and hidden tests removed)")
    make.add_argument("out", help="folder for the student copies")
    make.add_argument("--source", default=str(NOTEBOOKS_DIR),
                      help="folder of the teacher's notebooks")
    make.set_defaults(handler=_cmd_make)
    grade = actions.add_parser(
        "grade", help="run the hidden tests in students' notebooks; print scores")
    grade.add_argument("notebooks", nargs="+", metavar="NOTEBOOK",
                       help="students' notebooks (file names as handed out)")
    grade.add_argument("--source", default=str(NOTEBOOKS_DIR),
                       help="folder of the teacher's notebooks")
    grade.add_argument("--csv", default=None,
                       help="also write the scores to this CSV file")
    grade.set_defaults(handler=_cmd_grade)


def _cmd_make(args) -> int:
    for path in make_assignments(args.out, args.source):
        print(f"wrote {path}")
    return 0


def _cmd_grade(args) -> int:
    scores = [s for path in args.notebooks for s in grade_notebook(path, args.source)]
    print(scores_table(scores))
    table = scores_csv(scores)
    print("\n" + table, end="")
    if args.csv:
        with open(args.csv, "w", encoding="utf-8", newline="") as f:
            f.write(table)
    return 0
