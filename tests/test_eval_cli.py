"""`analyst eval`, `analyst eval compare` and `analyst datasets` through click, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eval_datasets.cli import datasets_group, eval_command

CODE = '```python\nimport pandas as pd\ndf = pd.read_csv(__import__("glob").glob("*.csv")[0])\nprint(df.shape)\n```'


def _script(path: Path, report: str) -> Path:
    # The report twice: answers no output shows are sent back once by the loop's answer check.
    path.write_text(json.dumps([CODE] + ["## Final Report\n" + report] * 2), encoding="utf-8")
    return path


def _eval(cache: Path, out: Path, script: Path, *extra: str, limit: int = 2):
    args = ["--split", "heldout", "--limit", str(limit), "--backend", "scripted", "--model", str(script)]
    args += ["--cache", str(cache), "--out", str(out), "--max-turns", "4", *extra]
    return CliRunner().invoke(eval_command, args, catch_exceptions=False)


def test_datasets_prepare_and_list(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(datasets_group, ["prepare", "--only", "mtcars", "--cache", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "mtcars" / "mtcars.csv").is_file()
    meta = json.loads((tmp_path / "mtcars" / "meta.json").read_text())
    assert meta["rows"] == 32 and meta["licence"].startswith("GPL")
    listing = runner.invoke(datasets_group, ["list", "--cache", str(tmp_path)], terminal_width=200)
    assert listing.exit_code == 0
    mtcars_row = next(line for line in listing.output.splitlines() if "mtcars" in line)
    assert " 32 " in mtcars_row and "train" in mtcars_row
    assert "heldout)" in listing.output
    bad = runner.invoke(datasets_group, ["prepare", "--only", "nosuch", "--cache", str(tmp_path)])
    assert bad.exit_code == 1 and "No such dataset: nosuch" in bad.output


def test_eval_heldout_limit_resume_and_compare(tmp_path: Path) -> None:
    cache, run_a, run_b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    first = _eval(cache, run_a, _script(tmp_path / "a.json", "Nothing to report."))
    assert first.exit_code == 0, first.output
    results = [json.loads(line) for line in (run_a / "results.jsonl").read_text().splitlines()]
    # --limit interleaves datasets: the first task of the first two held-out datasets.
    assert [r["task_id"] for r in results] == ["airquality/missing-ozone", "baseball/home-run-leader"]
    assert all(r["status"] == "report" and not r["correct"] for r in results)
    summary = json.loads((run_a / "summary.json").read_text())
    assert summary["overall"]["completion"] == 1.0 and summary["overall"]["correct"] == 0.0
    assert (run_a / "summary.html").is_file()

    again = _eval(cache, run_a, _script(tmp_path / "a.json", "Nothing to report."))
    assert again.exit_code == 0
    assert len((run_a / "results.jsonl").read_text().splitlines()) == 2, "resume ran nothing again"
    other = _eval(cache, run_a, _script(tmp_path / "other.json", "Nothing."))
    assert (
        other.exit_code == 1 and "holds results of scripted:a.json, not scripted:other.json" in other.output
    )

    # A second model that gets the airquality answers right (taken from the prepared reference).
    expected = json.loads((cache / "airquality" / "meta.json").read_text())["expected"]
    answers = expected["airquality/missing-ozone"]
    report = "\n".join(f"@{name}[{value:.0f}]" for name, value in answers.items())
    second = _eval(cache, run_b, _script(tmp_path / "b.json", report), limit=1)
    assert second.exit_code == 0
    compared = CliRunner().invoke(eval_command, ["compare", str(run_a), str(run_b)], terminal_width=200)
    assert compared.exit_code == 0, compared.output
    assert "1 task in both; 1 fixed, 0 broken" in compared.output
    assert "fixed: airquality/missing-ozone" in compared.output
    assert "+100.0%" in compared.output  # correctness went from 0% (of 2) to 100% (of 1)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--split", "heldout", "--cache", "{tmp}"], 2, "Missing option '--out'"),
        (["--tasks", "nosuch/*", "--cache", "{tmp}", "--out", "{tmp}/o"], 1, "No heldout task matches 'nosuch/*'"),
        (["--backend", "scripted", "--model", "{tmp}/none.json", "--tasks", "mpg/most-models", "--cache", "{tmp}",
          "--out", "{tmp}/o"], 1, "scripted backend needs --model FILE"),
        (["compare", "{tmp}/a", "{tmp}/b"], 1, "No results.jsonl in {tmp}/a: not an eval output folder"),
    ],
)  # fmt: skip
def test_user_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(eval_command, [a.format(tmp=tmp_path) for a in args], terminal_width=300)
    assert result.exit_code == code
    assert message.format(tmp=tmp_path) in result.output
    assert "Traceback" not in result.output
