"""Course mode: student copies, and grading with the hidden tests.

The teacher's notebooks get full marks, the blank student copies zero, and a
copy with some exercises solved exactly the points of those exercises. Each
grading runs a Jupyter kernel (a few seconds per notebook); the cells after the
last test cell (the notebooks' training runs) are not executed.
"""
from __future__ import annotations

import nbformat
import pytest

from lars_ref import exercises
from lars_ref.cli import main

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXERCISES_PER_NOTEBOOK = {
    "05_alexnet_vs_alexnet_bn.ipynb": {"im2col": 2, "conv_backward": 3,
                                       "batchnorm_backward": 3},
    "06_lars_at_large_batch.ipynb": {"lars_step": 3, "warmup": 2},
    "07_one_batch_many_workers.ipynb": {"micro_batch": 2},
}


def _teacher(name):
    return exercises.NOTEBOOKS_DIR / name


def _points(scores):
    return {s.exercise: s.points for s in scores}


def test_the_notebooks_hold_the_six_required_exercises_with_nbgrader_metadata():
    found = {}
    for path in exercises.exercise_notebooks():
        nb = nbformat.read(path, as_version=4)
        tests = [c for c in nb.cells if exercises.is_test_cell(c)]
        answers = [c for c in nb.cells if exercises.is_answer_cell(c)]
        assert len(answers) == len(tests)
        for cell in tests + answers:
            meta = cell.metadata["nbgrader"]
            assert set(meta) >= {"grade", "grade_id", "locked", "schema_version",
                                 "solution", "task"} and meta["schema_version"] == 3
        for cell in answers:
            assert exercises.BEGIN_SOLUTION in cell.source
            assert exercises.END_SOLUTION in cell.source
        for cell in tests:
            assert cell.metadata["nbgrader"]["locked"] is True
            assert exercises.BEGIN_HIDDEN in cell.source
        found[path.name] = {c.metadata["nbgrader"]["grade_id"]:
                            c.metadata["nbgrader"]["points"] for c in tests}
    assert found == EXERCISES_PER_NOTEBOOK


def test_student_copy_removes_solutions_hidden_tests_and_outputs():
    teacher = nbformat.read(_teacher("06_lars_at_large_batch.ipynb"), as_version=4)
    student = exercises.student_copy(teacher)
    text = "\n".join(c.source for c in student.cells)
    for marker in (exercises.BEGIN_SOLUTION, exercises.END_SOLUTION,
                   exercises.BEGIN_HIDDEN, "lars_step(w, g, v, lr=2.5"):
        assert marker not in text
    answers = [c for c in student.cells if exercises.is_answer_cell(c)]
    assert all("    raise NotImplementedError()" in c.source for c in answers)
    assert all(c.outputs == [] for c in student.cells if c.cell_type == "code")
    assert teacher.cells[0].source == student.cells[0].source
    assert any(exercises.BEGIN_HIDDEN in c.source for c in teacher.cells)  # not mutated


def test_replace_regions_keeps_the_indentation_and_the_code_around():
    source = ("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    y = x\n"
              "    ### END SOLUTION\n    return y")
    assert exercises._replace_regions(source, exercises.BEGIN_SOLUTION,
                                      exercises.END_SOLUTION, exercises.STUB) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        "    return y")


@pytest.mark.parametrize("name", sorted(EXERCISES_PER_NOTEBOOK))
def test_teacher_notebooks_get_full_marks(name):
    assert _points(exercises.grade_notebook(_teacher(name))) == \
        EXERCISES_PER_NOTEBOOK[name]


def test_blank_student_copies_get_zero(tmp_path, capsys):
    assert main(["exercises", "make", str(tmp_path / "handout")]) == 0
    copies = sorted((tmp_path / "handout").glob("*.ipynb"))
    assert [p.name for p in copies] == sorted(EXERCISES_PER_NOTEBOOK)
    capsys.readouterr()
    csv_path = tmp_path / "grades.csv"
    assert main(["exercises", "grade", *map(str, copies), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "total 0/8" in out and "total 0/5" in out and "total 0/2" in out
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "notebook,exercise,points,max_points,error"
    assert len(rows) == 1 + 6 and all(",0.0," in row for row in rows[1:])


def test_partly_solved_copy_gets_exactly_its_partial_score(tmp_path):
    """Solve im2col and the BN backward pass of notebook 05 (5 of its 8 points)."""
    name = "05_alexnet_vs_alexnet_bn.ipynb"
    teacher = nbformat.read(_teacher(name), as_version=4)
    student = exercises.student_copy(teacher)
    solved = {"im2col_answer", "batchnorm_backward_answer"}
    for mine, theirs in zip(student.cells, teacher.cells):
        if exercises.is_answer_cell(mine) and \
                mine.metadata["nbgrader"]["grade_id"] in solved:
            mine.source = theirs.source
    path = tmp_path / name
    nbformat.write(student, path)
    scores = exercises.grade_notebook(path)
    assert _points(scores) == {"im2col": 2, "conv_backward": 0, "batchnorm_backward": 3}
    assert sum(s.points for s in scores) == 5
    errors = {s.exercise: s.error for s in scores}
    assert "NotImplementedError" in errors["conv_backward"]


def test_grading_a_notebook_with_an_unknown_name_is_one_error_line(tmp_path, capsys):
    stray = tmp_path / "my_homework.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), stray)
    assert main(["exercises", "grade", str(stray)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lars-ref: error: ") and "--source" in err
    assert len(err.splitlines()) == 1
