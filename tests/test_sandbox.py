"""KernelSandbox against a real Jupyter kernel: outputs, state, figures, timeouts, death, files."""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.records import file_sha256
from sandbox.kernel import KernelSandbox, KernelStartError, SandboxError
from sandbox.launch import isolation_mode
from sandbox.pool import KernelPool


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSandbox]:
    root = tmp_path_factory.mktemp("sandbox")
    with KernelSandbox(root / "workspace", root / "figures", memory_limit=2 << 30) as box:
        yield box


def test_print_and_last_expression(sandbox: KernelSandbox) -> None:
    result = sandbox.execute("print('hello')\n6 * 7")
    assert result.ok
    assert result.stdout == "hello\n"
    assert result.result == "42"
    assert result.observation() == "hello\n42"


def test_state_persists_across_cells(sandbox: KernelSandbox) -> None:
    sandbox.execute("total = 40")
    assert sandbox.execute("total + 2").result == "42"


def test_exception_has_ansi_free_traceback(sandbox: KernelSandbox) -> None:
    result = sandbox.execute("def f():\n    return 1 / 0\nf()")
    assert not result.ok and result.error is not None
    assert result.error.ename == "ZeroDivisionError"
    assert "return 1 / 0" in result.error.traceback
    assert "\x1b" not in result.error.traceback
    assert result.observation().endswith("ZeroDivisionError: division by zero")
    assert sandbox.execute("print('still here')").stdout == "still here\n"


def test_library_frames_are_folded_in_what_the_model_reads(sandbox: KernelSandbox) -> None:
    result = sandbox.execute("import pandas as pd\ndf = pd.DataFrame({'a': [1]})\ndf.groupby('b')")
    assert "site-packages" in result.error.traceback  # the record keeps every frame
    observation = result.observation()
    assert "site-packages" not in observation
    assert re.search(r"df\.groupby\('b'\)\n\n  \[\d+ frames inside pandas\]\n\nKeyError: 'b'$", observation)
    # df['x'] raises pandas' own KeyError inside compiled code, then again from the cell's line:
    # only the part showing the cell is read.
    chained = sandbox.execute("df['x']")
    assert "direct cause" in chained.error.traceback and ".pyx" in chained.error.traceback
    assert re.fullmatch(  # the cell number depends on the cells run before in this kernel
        r"Traceback \(most recent call last\):\n\n  Cell In\[\d+\], line 1\n    df\['x'\]\n\n"
        r"  \[2 frames inside pandas\]\n\nKeyError: 'x'",
        chained.observation(),
    )


def test_plot_becomes_png_file_without_savefig(sandbox: KernelSandbox) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('Sales by month')\nplt.show()"
    result = sandbox.execute(code, timeout=60)
    assert result.ok, result.observation()
    assert len(result.figures) == 1
    path = Path(result.figures[0])
    assert path.parent == sandbox.figures_dir
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    item = result.displays[0]
    assert item.width and item.height and item.width > 100
    # the model reads the figure's path inside the run, not where the run was written
    observation = result.observation()
    assert f"[figure saved: {path.parent.name}/{path.name} " in observation
    assert str(path.parent.parent) not in observation
    assert "Sales by month" in item.description and "1 lines" in item.description
    again = sandbox.execute("plt.bar(['a', 'b'], [1, 2])")
    assert len(again.figures) == 1 and again.figures[0] != result.figures[0]


def test_html_display_kept_as_text(sandbox: KernelSandbox) -> None:
    result = sandbox.execute("import pandas as pd\npd.DataFrame({'a': [1, 2]})", timeout=60)
    html = [d for d in result.displays if d.mime == "text/html"]
    assert html and "<table" in (html[0].text or "")
    assert result.result is not None and "a" in result.result


def test_display_of_plain_object_is_read_as_output(sandbox: KernelSandbox) -> None:
    result = sandbox.execute("display('shown')")
    assert "'shown'" in result.stdout


def test_input_and_getpass_raise_instead_of_blocking(sandbox: KernelSandbox) -> None:
    for code in ("input('name? ')", "import getpass\ngetpass.getpass()"):
        result = sandbox.execute(code, timeout=10)
        assert result.error is not None and result.error.ename == "StdinNotImplementedError"
        assert not result.timed_out and result.duration < 5


def test_ten_megabyte_print_is_capped_and_truncated(tmp_path: Path) -> None:
    with KernelSandbox(tmp_path / "ws", keep_chars=50_000) as box:
        result = box.execute("print('x' * 10_000_000 + 'END')", timeout=60)
    assert len(result.stdout) < 50_200
    assert result.stdout.rstrip().endswith("END")
    assert any("characters of stdout were dropped" in note for note in result.notes)
    observation = result.observation(4000)
    assert "characters omitted" in observation and len(observation) < 4200


def test_timeout_interrupts_and_keeps_state(sandbox: KernelSandbox) -> None:
    sandbox.execute("kept = 'yes'")
    began = time.monotonic()
    result = sandbox.execute("import time\ntime.sleep(100)", timeout=2)
    assert result.timed_out and not result.kernel_restarted
    assert time.monotonic() - began < 10
    assert any("timeout" in note for note in result.notes)
    assert sandbox.execute("kept").result == "'yes'"


def test_interrupt_from_another_thread(sandbox: KernelSandbox) -> None:
    threading.Timer(1.0, sandbox.interrupt).start()
    result = sandbox.execute("import time\ntime.sleep(100)", timeout=30)
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
    assert not result.timed_out and result.duration < 10


def test_dead_kernel_is_restarted_and_usable(tmp_path: Path) -> None:
    with KernelSandbox(tmp_path / "ws") as box:
        box.execute("lost = 1")
        result = box.execute("import os\nos._exit(1)", timeout=30)
        assert result.kernel_restarted and not result.ok
        assert any("exit status 1" in note for note in result.notes)
        assert box.execute("print('back')").stdout == "back\n"
        assert box.execute("lost").error.ename == "NameError"


def test_restart_loses_state(tmp_path: Path) -> None:
    with KernelSandbox(tmp_path / "ws") as box:
        box.execute("value = 3")
        box.restart()
        assert box.execute("value").error.ename == "NameError"


def test_workspace_is_cwd_and_inputs_are_copies(tmp_path: Path) -> None:
    original = tmp_path / "user" / "sales.csv"
    original.parent.mkdir()
    original.write_text("month,amount\njan,10\nfeb,12\n")
    before = file_sha256(original)
    with KernelSandbox(tmp_path / "ws") as box:
        name = box.add_input(original)
        assert name == "sales.csv"
        read = box.execute("import pandas as pd\nprint(pd.read_csv('sales.csv')['amount'].sum())", timeout=60)
        assert read.stdout == "22\n"
        assert box.execute("import os\nprint(os.getcwd())").stdout.strip() == str(box.workspace)
        box.execute("open('sales.csv', 'w').write('gone')\nimport os\nos.remove('sales.csv')")
        assert not (box.workspace / "sales.csv").exists()
        other = tmp_path / "other" / "sales.csv"
        other.parent.mkdir()
        other.write_text("x\n1\n")
        assert box.add_input(other) == "sales.csv"  # the name is free again
        assert box.add_input(original) == "sales_2.csv"
    assert file_sha256(original) == before


def _serve_once() -> tuple[http.server.HTTPServer, str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_network_refused_by_default_and_allowed_on_request(tmp_path: Path) -> None:
    server, url = _serve_once()
    code = f"import urllib.request\nprint(urllib.request.urlopen({url!r}, timeout=5).status)"
    try:
        with KernelSandbox(tmp_path / "closed") as box:
            refused = box.execute(code, timeout=30)
        with KernelSandbox(tmp_path / "open", allow_network=True) as box:
            allowed = box.execute(code, timeout=30)
    finally:
        server.shutdown()
    assert refused.error is not None and refused.error.ename == "URLError"
    assert allowed.ok and allowed.stdout == "200\n", allowed.observation()


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_close_leaves_no_processes(tmp_path: Path) -> None:
    box = KernelSandbox(tmp_path / "ws")
    box.execute("import subprocess\nchild = subprocess.Popen(['sleep', '1000'])")
    assert box.pid is not None
    processes = _tree(box.pid)
    assert len(processes) >= 2
    box.close()
    time.sleep(0.2)
    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    with pytest.raises(SandboxError):
        box.execute("1")


def test_pool_hands_out_warm_kernels_once(tmp_path: Path) -> None:
    with KernelPool(1) as pool:
        first = pool.acquire(tmp_path / "a", tmp_path / "a-figures")
        assert first.execute("import os\nprint(os.getcwd())").stdout.strip() == str(tmp_path / "a")
        first.execute("secret = 1")
        pool.release(first)
        second = pool.acquire(tmp_path / "b")
        assert second is not first and second.pid != first.pid
        assert second.execute("secret").error.ename == "NameError"
        assert second.figures_dir == tmp_path / "b" / "figures"
        pid = second.pid
    assert pid is not None and not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_start_failure_is_a_typed_system_fault(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(KernelStartError, match="not ready within"):
        KernelSandbox(tmp_path / "ws", startup_timeout=0.05)
    time.sleep(0.3)
    after = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert [p for p in after if p.status() != psutil.STATUS_ZOMBIE] == []


def test_owner_secrets_are_not_in_the_kernel_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    monkeypatch.setenv("ANALYST_VISIBLE", "plain")
    with KernelSandbox(tmp_path / "ws") as box:
        result = box.execute(
            "import os\nprint(os.environ.get('OPENAI_API_KEY'), os.environ.get('ANALYST_VISIBLE'))"
        )
    assert result.stdout == "None plain\n"


@pytest.mark.parametrize("mode", ["netns", "none"])
def test_fallback_modes_still_refuse_network_and_clean_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if mode == "netns" and (os.geteuid() != 0 or isolation_mode() == "none"):
        pytest.skip("a network namespace without a user namespace needs root")
    monkeypatch.setattr("sandbox.kernel.isolation_mode", lambda: mode)
    server, url = _serve_once()
    try:
        box = KernelSandbox(tmp_path / "ws")
        assert box.mode == mode
        result = box.execute(f"import urllib.request\nurllib.request.urlopen({url!r}, timeout=5)", timeout=30)
        processes = _tree(box.pid)
        box.close()
    finally:
        server.shutdown()
    assert result.error is not None and result.error.ename == "URLError"
    time.sleep(0.2)
    assert [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


def test_lost_idle_status_is_recovered_from_the_shell_reply(sandbox: KernelSandbox) -> None:
    # iopub may drop messages when flooded; simulate the lost idle by eating it first.
    from sandbox.outputs import OutputCollector

    msg_id = sandbox._kc.execute("print('x')", allow_stdin=False)
    while True:
        msg = sandbox._kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
            break
    out = OutputCollector(1000, sandbox.figures_dir, sandbox._figure_path)
    sandbox._reply = None
    began = time.monotonic()
    assert sandbox._collect(msg_id, began + 30, out) == "idle"
    assert time.monotonic() - began < 5 and out.lost_idle
    assert sandbox._drain_shell(msg_id)["status"] == "ok"
    assert sandbox.execute("print('next')").stdout == "next\n"


def test_owner_interrupt_stops_the_running_cell(sandbox: KernelSandbox) -> None:
    import _thread

    threading.Timer(1.0, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        sandbox.execute("import time\ntime.sleep(100)", timeout=60)
    began = time.monotonic()
    assert sandbox.execute("print('free')", timeout=30).stdout == "free\n"
    assert time.monotonic() - began < 5
