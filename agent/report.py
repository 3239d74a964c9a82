"""The run's report: ``report.md`` to read anywhere and ``report.html``, one self-contained page.

Both come from the same finished (or cut-short) trajectory. The model's text is untrusted: its
markdown is rendered with raw HTML disabled, and only image files inside the run folder are embedded
(as base64 data URIs), so the page loads nothing from anywhere and needs no JavaScript.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from agent.records import Step, Trajectory

_PYTHON_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n.*?(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_REPORT_HEADING = re.compile(r"\A\s*#{1,6}\s*final\s+report\b[^\n]*\n?", re.IGNORECASE)
_HEADING = re.compile(r"^( {0,3})(#{1,6})(?=\s|$)")
_FENCE_LINE = re.compile(r"^ {0,3}(```|~~~)")
# the sandbox describes a figure as "Figure with 1 axes; axes(title='Sales by month', ...)"
_CHART_TITLE = re.compile(r"\b(?:suptitle|title)=(['\"])(.*?)\1")
OUTPUT_EXCERPT_CHARS = 1500  # per turn in the reports; analysis.ipynb keeps the whole output
_IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass
class Figure:
    """A chart the run saved: the file, its link relative to the run folder, and a caption."""

    path: Path
    link: str
    caption: str
    turn: int
    mime: str = "image/png"
    alt: str = ""


@dataclass
class StepLine:
    """One row of the steps appendix."""

    turn: int
    summary: str
    result: str
    failed: bool


# ---------------------------------------------------------------- shared with the notebook


def prose(model_text: str) -> str:
    """The model's words around its code: the reply with its executed python blocks removed."""
    text = _PYTHON_FENCE.sub("", model_text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def report_body(report: str | None) -> str:
    """The final report without its ``## Final Report`` heading (the page gives it its own)."""
    return _REPORT_HEADING.sub("", report or "", count=1).strip()


def status_line(trajectory: Trajectory) -> str:
    """How the run ended, in one plain sentence."""
    outcome = trajectory.outcome
    count = outcome.turns if outcome and outcome.turns else len(trajectory.steps)
    after = "before its first turn" if count == 0 else f"after {count} turn{'s' if count != 1 else ''}"
    if outcome is None:
        return f"Unfinished: the run stopped {after} without recording how it ended."
    lines = {
        "report": f"Finished: the model wrote its final report {after}.",
        "max_turns": f"Stopped at the turn limit ({count} turns) before a final report.",
        "time_budget": f"Stopped at the time budget {after}, before a final report.",
        "repeated_error": f"Stopped {after}: the same cell kept failing.",
        "no_code": f"Stopped {after}: the model wrote neither code nor a report, even after a nudge.",
        "interrupted": f"Interrupted {after} (Ctrl-C or a termination signal).",
        "error": f"Stopped {after} by a system fault.",
    }
    line, detail = lines[outcome.status], outcome.detail.strip()
    if outcome.wrap_up_turn is not None:
        line += f" A cell kept failing, so the report was asked for on turn {outcome.wrap_up_turn}."
    # the runner may put just the status word in detail; repeating it would read oddly
    if not detail or detail.lower() in line.lower():
        return line
    return f"{line} {detail if detail[-1] in '.!?' else detail + '.'}"


def resolve_figure(path: str, out_dir: Path) -> Path:
    """Where a saved figure is on disk, whether the sandbox recorded it absolute or relative."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    for base in (out_dir, out_dir / "workspace", out_dir / "figures"):
        if (base / candidate).is_file():
            return base / candidate
    if candidate.is_file():  # relative to the working directory the run was started from
        return candidate.resolve()
    return out_dir / "figures" / candidate.name


def collect_figures(trajectory: Trajectory, out_dir: Path) -> list[Figure]:
    """Every image the cells displayed, in order, captioned from the step that made it."""
    figures: list[Figure] = []
    for step in trajectory.steps:
        execution = step.execution
        if execution is None:
            continue
        for item in execution.displays:
            if not item.path or not item.mime.startswith("image/"):
                continue
            path = resolve_figure(item.path, out_dir)
            link = Path(os.path.relpath(path, out_dir)).as_posix()
            caption = _figure_caption(item.description, step)
            figures.append(
                Figure(path, link, caption, step.index, item.mime, item.description.strip() or caption)
            )
    return figures


def _figure_caption(description: str, step: Step) -> str:
    """The chart's own title (from the sandbox's description of it) and what the step set out to do."""
    match = _CHART_TITLE.search(description)
    summary = summarize(step)
    return f"{match.group(2)} — {summary}" if match and match.group(2).strip() else summary


def summarize(step: Step) -> str:
    """A one-line account of a step: the model's first words, else the first line of its code."""
    if step.step_kind == "report":
        return "Wrote the final report."
    if step.step_kind == "check":
        return "Drafted the report; sent back to compute answers that no output showed."
    for line in prose(step.model_text).splitlines():
        line = line.strip().lstrip("#>*- ").strip()
        if line:
            return _shorten(line, 110)
    for line in (step.code or "").splitlines():
        if line.strip():
            return _shorten(line.strip().lstrip("# "), 110)
    return "Reply with no code." if step.step_kind in ("no_code", "nudge") else "(empty reply)"


def data_uri(path: Path, mime: str | None = None) -> str:
    """The file as a base64 data URI, so the page carries its own images."""
    mime = mime or _IMAGE_SUFFIXES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------- content shared by md and html


def step_lines(trajectory: Trajectory) -> list[StepLine]:
    """The appendix: each turn, what it did, and whether its error was fixed later."""
    steps = trajectory.steps
    lines = []
    for position, step in enumerate(steps):
        problem = _problem(step)
        if problem is None:
            result = "ok" if step.execution is not None else "—"
        else:
            fixed = next((s.index for s in steps[position + 1 :] if s.execution and s.execution.ok), None)
            result = f"{problem} (fixed in turn {fixed})" if fixed else f"{problem} (not fixed)"
        lines.append(StepLine(step.index, summarize(step), result, problem is not None))
    return lines


def _problem(step: Step) -> str | None:
    execution = step.execution
    if execution is None:
        return None
    if execution.kernel_restarted:
        return "the kernel died and was restarted"
    if execution.timed_out:
        return "timed out"
    if execution.error is not None:
        return _shorten(f"{execution.error.ename}: {execution.error.evalue}", 120)
    return None


def title(trajectory: Trajectory) -> str:
    """The page title: what was analysed."""
    names = [f.name for f in trajectory.header.files]
    return "Analysis of " + ", ".join(names) if names else "Analysis report"


def findings_markdown(trajectory: Trajectory) -> str:
    """The model's final report, headings moved under ours; or a plain note that there is none."""
    outcome = trajectory.outcome
    body = report_body(outcome.report if outcome else None)
    if not body:
        return "_The model did not write a final report; the steps below show how far it got._"
    return _balance_fences(escape_raw_html(_demote_headings(body)))


def _demote_headings(text: str, by: int = 2) -> str:
    """Push the model's headings two levels down so they sit inside 'Key findings'."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if _FENCE_LINE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            line = _HEADING.sub(lambda m: m.group(1) + "#" * min(6, len(m.group(2)) + by), line)
        lines.append(line)
    return "\n".join(lines)


def escape_raw_html(text: str) -> str:
    """Turn the model's raw HTML into text in report.md too, since many markdown viewers render it."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if _FENCE_LINE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            # code spans show their content literally, so only the text between them is escaped
            parts = re.split(r"(`+[^`]*?`+)", line)
            line = "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in parts)
        lines.append(line)
    return "\n".join(lines)


def _balance_fences(text: str) -> str:
    """Close a code fence the model left open, so it cannot swallow the rest of report.md."""
    opened = sum(1 for line in text.splitlines() if _FENCE_LINE.match(line)) % 2
    return text + "\n```" if opened else text


def meta_rows(trajectory: Trajectory) -> list[tuple[str, str]]:
    """Model, backend, turns, time and tokens as label/value pairs."""
    header, outcome = trajectory.header, trajectory.outcome
    rows = [("Model", header.model), ("Backend", header.backend)]
    rows.append(("Turns", str(outcome.turns if outcome else len(trajectory.steps))))
    if outcome is not None:
        rows.append(("Wall time", _duration(outcome.wall_seconds)))
        prompt, completion = outcome.prompt_tokens, outcome.completion_tokens
    else:
        prompt = sum(s.prompt_tokens for s in trajectory.steps)
        completion = sum(s.completion_tokens for s in trajectory.steps)
    rows.append(("Tokens", f"{prompt:,} prompt · {completion:,} generated"))
    rows.append(("Started", header.started_at))
    if outcome is not None:
        rows.append(("Finished", outcome.finished_at))
    rows += [
        (label, value) for label, value in (("Task", header.task_id), ("Version", header.version)) if value
    ]
    return rows


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def _shape(rows: int | None, columns: int | None) -> str:
    return f"{rows:,} × {columns}" if rows is not None and columns is not None else "?"


# ---------------------------------------------------------------- report.md


def render_markdown(trajectory: Trajectory, figures: list[Figure]) -> str:
    """report.md: everything a reader needs, with figures linked relative to the run folder."""
    header, outcome = trajectory.header, trajectory.outcome
    out = [f"# {title(trajectory)}", "", f"**Question:** {_md_inline(header.question)}", ""]
    out += [f"**Status:** {status_line(trajectory)}", ""]
    if header.files:
        out += ["## Data", "", "| File | Rows × columns | sha256 |", "|---|---|---|"]
        out += [
            f"| {_md_inline(f.name)} | {_shape(f.rows, f.columns)} | `{f.sha256[:12]}` |"
            for f in header.files
        ]
        out.append("")
    out += ["## Key findings", "", findings_markdown(trajectory), ""]
    if outcome is not None and outcome.answers:
        out += ["## Answers", "", "| Name | Value |", "|---|---|"]
        out += [f"| {_md_code(k)} | {_md_inline(v)} |" for k, v in outcome.answers.items()]
        out.append("")
    if figures:
        out += ["## Figures", ""]
        for number, figure in enumerate(figures, 1):
            caption = f"Figure {number} (turn {figure.turn}): {_md_inline(figure.caption)}"
            link = f"<{figure.link}>" if " " in figure.link else figure.link
            out += [f"![{caption}]({link})", "", f"*{caption}*", ""]
    out += ["## Steps", "", "| Turn | What the model did | Result |", "|---|---|---|"]
    out += [
        f"| {s.turn} | {_md_inline(s.summary)} | {_md_inline(s.result)} |" for s in step_lines(trajectory)
    ]
    out.append("")
    for step in trajectory.steps:
        out += _md_step_details(step)
    out += ["## Run", ""]
    out += [f"- **{label}:** {_md_inline(value)}" for label, value in meta_rows(trajectory)]
    return "\n".join(out) + "\n"


def _md_step_details(step: Step) -> list[str]:
    """A turn's code and a short excerpt of its output (the notebook has everything)."""
    if not step.code or step.execution is None:
        return []
    output = step.execution.observation(OUTPUT_EXCERPT_CHARS)
    return [f"### Turn {step.index}", "", *_md_fence(step.code, "python"), "", *_md_fence(output, "text"), ""]


def _md_fence(text: str, language: str) -> list[str]:
    """A fenced block longer than any backtick run inside, so the content cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text.rstrip("\n"), fence]


def _md_inline(text: str) -> str:
    """One line of our own markdown around untrusted text: no newlines, no stray markup."""
    text = " ".join(text.split())
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)


def _md_code(text: str) -> str:
    """Untrusted text as an inline code span inside a table cell (backslashes do not escape in code)."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


# ---------------------------------------------------------------- report.html


def render_html(trajectory: Trajectory, figures: list[Figure], out_dir: Path) -> str:
    """report.html: the same content as one page with inline CSS and embedded images."""
    header = trajectory.header
    ok = trajectory.outcome is not None and trajectory.outcome.status == "report"
    parts = [
        '<header class="top">',
        '<p class="eyebrow">Analyst report</p>',
        f"<h1>{_e(title(trajectory))}</h1>",
        f'<p class="question"><span>Question</span>{_e(header.question)}</p>',
        f'<p class="status {"ok" if ok else "warn"}">{_e(status_line(trajectory))}</p>',
        "</header>",
        _html_files(trajectory),
        '<section><h2>Key findings</h2><div class="prose">',
        render_model_markdown(findings_markdown(trajectory), out_dir),
        "</div></section>",
        _html_answers(trajectory),
        _html_figures(figures),
        _html_steps(trajectory),
        _html_meta(trajectory),
    ]
    body = "\n".join(p for p in parts if p)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title(trajectory))}</title>\n<style>\n{_css()}</style>\n</head>\n"
        f'<body>\n<main class="report">\n{body}\n</main>\n</body>\n</html>\n'
    )


def render_model_markdown(text: str, out_dir: Path) -> str:
    """Untrusted markdown to HTML: raw HTML escaped; images only from the run folder, embedded."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    run_dir = out_dir.resolve()

    def image(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        alt = renderer.renderInlineAsText(token.children or [], options, env)
        path = (run_dir / str(token.attrGet("src") or "")).resolve()
        mime = _IMAGE_SUFFIXES.get(path.suffix.lower())
        if mime and path.is_file() and path.is_relative_to(run_dir):
            return f'<img src="{data_uri(path, mime)}" alt="{_e(alt)}">'
        return f'<span class="missing">[image not in the run folder: {_e(alt or str(token.attrGet("src")))}]</span>'

    parser.add_render_rule("image", image)
    return parser.render(text)


def _html_files(trajectory: Trajectory) -> str:
    files = trajectory.header.files
    if not files:
        return ""
    rows = "".join(
        f"<tr><td>{_e(f.name)}</td><td>{_shape(f.rows, f.columns)}</td><td><code>{f.sha256[:12]}</code></td></tr>"
        for f in files
    )
    head = "<tr><th>File</th><th>Rows × columns</th><th>sha256</th></tr>"
    return f"<section><h2>Data</h2><table><thead>{head}</thead><tbody>{rows}</tbody></table></section>"


def _html_answers(trajectory: Trajectory) -> str:
    outcome = trajectory.outcome
    if outcome is None or not outcome.answers:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(k)}</code></td><td>{_e(v)}</td></tr>" for k, v in outcome.answers.items()
    )
    head = "<tr><th>Name</th><th>Value</th></tr>"
    return f"<section><h2>Answers</h2><table><thead>{head}</thead><tbody>{rows}</tbody></table></section>"


def _html_figures(figures: list[Figure]) -> str:
    if not figures:
        return ""
    items = []
    for number, figure in enumerate(figures, 1):
        caption = f"<b>Figure {number}</b> · turn {figure.turn} · {_e(figure.caption)}"
        if figure.path.is_file():
            image = f'<img src="{data_uri(figure.path, figure.mime)}" alt="{_e(figure.alt)}">'
        else:
            image = f'<p class="missing">[figure file missing: {_e(figure.link)}]</p>'
        items.append(f"<figure>{image}<figcaption>{caption}</figcaption></figure>")
    return '<section><h2>Figures</h2><div class="figures">' + "".join(items) + "</div></section>"


def _html_steps(trajectory: Trajectory) -> str:
    lines = {line.turn: line for line in step_lines(trajectory)}
    items = []
    for step in trajectory.steps:
        line = lines[step.index]
        badge = f'<span class="badge {"bad" if line.failed else "good"}">{_e(line.result)}</span>'
        badge = badge if step.execution is not None else ""
        details = _html_step_details(step)
        items.append(
            f'<li><span class="turn">{step.index}</span><div><p>{_e(line.summary)} {badge}</p>{details}</div></li>'
        )
    if not items:
        items.append("<li><div><p>No steps were recorded.</p></div></li>")
    return '<section><h2>Steps</h2><ol class="steps">' + "".join(items) + "</ol></section>"


def _html_step_details(step: Step) -> str:
    """The code a turn ran and a short excerpt of what it printed, folded away (no JS needed)."""
    execution = step.execution
    if not step.code or execution is None:
        return ""
    return (
        f'<details><summary>Code and output</summary><pre class="code"><code>{_e(step.code)}</code></pre>'
        f'<pre class="output">{_e(execution.observation(OUTPUT_EXCERPT_CHARS))}</pre></details>'
    )


def _html_meta(trajectory: Trajectory) -> str:
    rows = "".join(
        f"<div><dt>{_e(label)}</dt><dd>{_e(value)}</dd></div>" for label, value in meta_rows(trajectory)
    )
    return f'<footer><h2>Run</h2><dl class="meta">{rows}</dl></footer>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _css() -> str:
    return files("agent").joinpath("templates/report.css").read_text(encoding="utf-8")


# ---------------------------------------------------------------- entry point


def write_report(trajectory: Trajectory, out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into the run folder; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = collect_figures(trajectory, out_dir)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(render_markdown(trajectory, figures), encoding="utf-8")
    html_path.write_text(render_html(trajectory, figures, out_dir), encoding="utf-8")
    return md_path, html_path
