"""`analyst run` end to end with a scripted model and a real kernel; bad inputs fail before any model loads."""

import json

import nbformat
import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.records import read_trajectory

# 2 * (price * sales).sum() over the fixture; the script never states it, only the kernel computes it.
MAGIC = 2 * sum(
    p * s
    for p, s in zip(
        [1.5, 2.25, 3.0, 0.75, 5.5, 1.25, 2.0, 4.5, 3.75, 6.0],
        [13, 7, 22, 5, 19, 11, 3, 17, 29, 2],
        strict=True,
    )
)
REPLIES = [
    "Let me look.\n```python\nimport pandas as pd\ndf = pd.read_csv('shop.csv')\n"
    "print('magic', 2 * (df.price * df.sales).sum())\n```",
    "```python\nimport matplotlib.pyplot as plt\ndf.groupby('city').sales.sum().plot.bar(title='Sales by city')\n"
    "plt.show()\n```",
    f"## Final Report\n- Sales peak in Kyiv.\n@magic[{MAGIC}]",
]


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(REPLIES))
    return path


def test_run_writes_report_notebook_and_trajectory(tmp_path, small_csv, script):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(small_csv),
            "Where do sales peak?",
            "--backend",
            "scripted",
            "--model",
            str(script),
            "--out",
            str(out),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "report" and summary["turns"] == 3
    magic = f"magic {MAGIC}"
    trajectory = read_trajectory(out / "trajectory.jsonl")
    assert trajectory.steps[0].execution.stdout.strip() == magic
    assert magic in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert magic in html and "data:image/png;base64," in html
    notebook = nbformat.read(out / "analysis.ipynb", as_version=4)
    nbformat.validate(notebook)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any(magic in o.get("text", "") for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    figures = list((out / "figures").glob("*.png"))
    assert len(figures) == 1 and figures[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_report_exits_3(tmp_path, small_csv):
    script = tmp_path / "r.json"
    script.write_text(json.dumps(["```python\nprint(1)\n```"] * 3))
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(small_csv),
            "q",
            "--backend",
            "scripted",
            "--model",
            str(script),
            "--out",
            str(tmp_path / "o"),
            "--max-turns",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 3


def test_ctrl_c_while_the_model_loads_exits_130(tmp_path, small_csv, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("agent.cli._make_backend", interrupted)
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["run", str(small_csv), "q", "--out", str(out), "--quiet"])
    assert result.exit_code == 130, result.output
    assert "interrupted while loading the model" in result.output
    assert not (out / "trajectory.jsonl").exists()


def test_replay_prints_the_run(tmp_path, small_csv, script):
    out = tmp_path / "out"
    CliRunner().invoke(
        main,
        [
            "run",
            str(small_csv),
            "q",
            "--backend",
            "scripted",
            "--model",
            str(script),
            "--out",
            str(out),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    result = CliRunner().invoke(main, ["replay", str(out / "trajectory.jsonl")], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"magic {MAGIC}" in result.output and "status: report" in result.output


BAD = {
    "missing": (lambda d: [str(d / "nope.csv"), "q"], "No such file"),
    "directory": (lambda d: [str(d), "q"], "is a directory"),
    "empty": (lambda d: [str(_write(d / "e.csv", b"")), "q"], "is empty"),
    "header only": (lambda d: [str(_write(d / "h.csv", b"a,b\n")), "q"], "no data rows"),
    "binary": (lambda d: [str(_write(d / "b.csv", bytes(range(256)) * 8)), "q"], "binary"),
    "unsupported": (lambda d: [str(_write(d / "x.pdf", b"%PDF")), "q"], "unsupported file type"),
    "empty question": (lambda d: [str(_write(d / "ok.csv", b"a\n1\n")), "  "], "question is empty"),
    "no question": (lambda d: [str(_write(d / "ok.csv", b"a\n1\n"))], "Give one or more data files"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_nonzero_before_model(tmp_path, case):
    make, message = BAD[case]
    # An unreachable server as the model: reaching it would fail with a different message.
    args = [
        "run",
        *make(tmp_path),
        "--backend",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert result.output.strip().count("\n") <= 3  # click's usage lines at most, never a traceback
    assert "Traceback" not in result.output


def test_unwritable_out_dir(tmp_path, small_csv, script):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should go")
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(small_csv),
            "q",
            "--backend",
            "scripted",
            "--model",
            str(script),
            "--out",
            str(blocker / "run"),
        ],
    )
    assert result.exit_code == 1 and "Cannot write to output folder" in result.output
