"""Messy user files at the size users really have: a 1 GB CSV is previewed from a sample, in bounded memory."""

import resource
import time

import pytest

from agent.preview import load_input, preview_text

pytestmark = pytest.mark.faults


def test_one_gigabyte_csv_is_sampled_with_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    row = "2024-01-01,North,Widgets,124,12.20,1512.80\n"
    block = row * 100_000
    with open(path, "w") as handle:
        handle.write("month,region,product,units,unit_price,revenue\n")
        while handle.tell() < 1 << 30:
            handle.write(block)
    rows = (path.stat().st_size - len("month,region,product,units,unit_price,revenue\n")) // len(row)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    info = load_input(path)
    text = preview_text(info)
    seconds = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    table = info.tables[0]
    assert not table.rows_exact and abs(table.rows - rows) / rows < 0.05
    assert "about" in text and "Large file" in text and "usecols" in text
    assert grown_mb < 300, f"preview grew the process by {grown_mb:.0f} MB"
    assert seconds < 60
