"""The code base stays ruff-clean: lint and format."""

import subprocess
import sys

from conftest import REPO


def test_ruff_lint_and_format_are_clean():
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command_verbatim():
    ci_command = (REPO / ".ci/run").read_text().strip().splitlines()[-1]
    readme_blocks = (REPO / "README.md").read_text().split("```bash\n")
    quick_start = [block.split("```")[0].strip() for block in readme_blocks[1:3]]
    assert ci_command == quick_start[1]
    assert quick_start[0].endswith("snakemake --cores 2")
