"""README's test command is the one CI runs (the brief: `.ci/run` calls README's command)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    test_commands = [b.strip() for b in bash_blocks(readme) if "pytest" in b]
    assert len(test_commands) == 1, "README must hold exactly one test command"
    # README's line starts with creating and activating a venv; CI makes its own venv.
    after_venv = test_commands[0].split("activate && ", 1)[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert after_venv in ci_lines


def test_readme_main_job_is_the_demo():
    readme = (ROOT / "README.md").read_text()
    assert bash_blocks(readme)[0].strip().endswith("lars-ref demo")
