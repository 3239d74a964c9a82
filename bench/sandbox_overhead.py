"""How much the sandbox costs: trivial-cell round trip and cold kernel start, next to their floors.

Rows: in-process ``exec`` (the floor: no kernel at all), IPython's own ``run_cell`` timed inside
the kernel (the shell's work without any messaging), one ZMQ ipc round trip between two processes
(the transport's floor), a stock ipykernel over TCP driven by the
plain jupyter_client loop (what any notebook front end pays), and KernelSandbox (namespaces,
limits, Unix sockets, output capture). Run: ``.venv/bin/python bench/sandbox_overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.kernel import KernelSandbox  # noqa: E402
from sandbox.launch import isolation_mode, pids_cgroup_root  # noqa: E402

CODE = "1+1"


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    """Seconds per call of ``fn``, ``reps`` times."""
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def exec_floor(reps: int) -> list[float]:
    namespace: dict[str, object] = {}
    return timed(lambda: exec(compile(CODE, "<cell>", "exec"), namespace), reps)


def _echo(address: str) -> None:
    import zmq

    socket = zmq.Context().socket(zmq.REP)
    socket.bind(address)
    while (message := socket.recv()) != b"stop":
        socket.send(message)
    socket.send(b"")


def zmq_ping(reps: int, root: Path) -> list[float]:
    """Round trips of one small message between two processes over a ZMQ ipc socket."""
    import multiprocessing

    import zmq

    address = f"ipc://{root}/ping"
    server = multiprocessing.get_context("spawn").Process(target=_echo, args=(address,))
    server.start()
    socket = zmq.Context().socket(zmq.REQ)
    socket.connect(address)
    socket.send(b"x")
    socket.recv()  # the server is up

    def ping() -> None:
        socket.send(b"x")
        socket.recv()

    times = timed(ping, reps)
    socket.send(b"stop")
    socket.recv()
    server.join()
    return times


def stock_kernel(reps: int) -> tuple[list[float], list[float]]:
    """Cell round trips and start times of a stock ipykernel (TCP), with the plain client loop."""
    from jupyter_client.manager import start_new_kernel

    starts, cells = [], []
    for i in range(3):
        began = time.perf_counter()
        km, kc = start_new_kernel()
        starts.append(time.perf_counter() - began)
        if i == 0:
            for _ in range(10):
                kc.execute_interactive(CODE, timeout=30)
            cells = timed(
                lambda kc=kc: kc.execute_interactive(CODE, timeout=30, output_hook=lambda m: None), reps
            )
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return cells, starts


INSIDE = """
import json, time
_ip, _t = get_ipython(), []
for _ in range({reps}):
    _b = time.perf_counter()
    _ip.run_cell({code!r}, store_history=False, silent=True)
    _t.append(time.perf_counter() - _b)
print(json.dumps(_t))
"""


def sandbox(reps: int, root: Path) -> tuple[list[float], list[float], list[float]]:
    """Cell round trips, start times, and IPython's own run_cell time measured inside the kernel."""
    starts, cells, inside = [], [], []
    for i in range(3):
        began = time.perf_counter()
        box = KernelSandbox(root / f"ws{i}")
        starts.append(time.perf_counter() - began)
        if i == 0:
            for _ in range(10):
                box.execute(CODE)
            cells = timed(lambda box=box: box.execute(CODE), reps)
            inside = json.loads(box.execute(INSIDE.format(reps=reps, code=CODE), timeout=120).stdout)
        box.close()
    return cells, starts, inside


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    floor = exec_floor(args.reps)
    stock_cells, stock_starts = stock_kernel(args.reps)
    with tempfile.TemporaryDirectory() as tmp:
        box_cells, box_starts, inside = sandbox(args.reps, Path(tmp))
        ping = zmq_ping(args.reps, Path(tmp))
    base = statistics.median(floor)
    print(f"isolation: {isolation_mode()}, pids cgroup: {'yes' if pids_cgroup_root() else 'no'}")
    print(f"cpus: {os.cpu_count()}, load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"trivial cell {CODE!r}, {args.reps} reps; cold start median of 3")
    print(f"{'':24}{'cell ms (median)':>18}{'p90 ms':>10}{'x exec':>10}{'start s':>10}")
    rows = [("in-process exec", floor, None), ("IPython run_cell, in kernel", inside, None)]
    rows.append(("zmq ipc ping-pong", ping, None))
    rows.append(("stock ipykernel (tcp)", stock_cells, stock_starts))
    rows.append(("KernelSandbox", box_cells, box_starts))
    for name, cells, starts in rows:
        p90 = sorted(cells)[int(len(cells) * 0.9)] * 1000
        start = f"{statistics.median(starts):10.2f}" if starts else f"{'-':>10}"
        ratio = statistics.median(cells) / base
        print(f"{name:24}{ms(cells):>18}{p90:10.3f}{ratio:10.0f}{start}")


if __name__ == "__main__":
    main()
