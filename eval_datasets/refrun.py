"""Run reference snippets in a separate process and print the variables they assign as JSON.

A separate process because each snippet runs with the working directory set to its dataset folder
and with nothing predefined, exactly as the contract of ``Task.reference_code`` promises; changing
the working directory of the caller (a CLI or a test process with threads) would not be safe.

stdin: a JSON list of ``{"folder", "code", "names"}``; stdout: a JSON list of
``{"values": {name: number-or-text}}`` or ``{"error": "..."}``, one per job.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import traceback
from typing import Any


def plain(value: Any) -> float | str:
    """A JSON value for an answer: numbers become floats, text stays text."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"answer is {value!r}; expected a number or a text")
    if isinstance(value, numbers.Number):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar that is not registered as a Number
        return plain(value.item())
    raise TypeError(f"answer has type {type(value).__name__}; expected a number or a text")


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute one snippet in a fresh namespace inside its folder and collect the named variables."""
    namespace: dict[str, Any] = {"__name__": "__reference__"}
    try:
        os.chdir(job["folder"])
        exec(compile(job["code"], "<reference_code>", "exec"), namespace)
        values: dict[str, Any] = {}
        for name in job["names"]:
            if name not in namespace:
                raise NameError(f"reference code did not assign {name!r}")
            value = namespace[name]
            values[name] = [str(v) for v in value] if name == "facts" else plain(value)
        return {"values": values}
    except Exception:
        return {"error": traceback.format_exc(limit=3)}


def main() -> None:
    jobs = json.load(sys.stdin)
    json.dump([run_job(job) for job in jobs], sys.stdout)


if __name__ == "__main__":
    main()
