import importlib
import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# A shell without job control starts background jobs with SIGINT ignored, and an ignored signal stays
# ignored across exec: the Ctrl-C tests (and the `analyst` processes they start) would never see it.
# A Python handler is reset to the default on exec, so the children get a normal SIGINT too.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def script():
    """Load ``scripts/NAME.py`` as a module: scripts/ is not a package, and its scripts import each
    other by plain name, as they do when run."""
    folder = str(Path(__file__).resolve().parent.parent / "scripts")
    sys.path.insert(0, folder)
    yield importlib.import_module
    sys.path.remove(folder)


@pytest.fixture
def small_csv(tmp_path):
    """A 10-row CSV; the tests ask the kernel for numbers that only a real computation gives."""
    frame = pd.DataFrame(
        {
            "city": ["Oslo", "Lima", "Pune", "Kyiv", "Baku", "Oslo", "Lima", "Pune", "Kyiv", "Baku"],
            "sales": [13, 7, 22, 5, 19, 11, 3, 17, 29, 2],
            "price": [1.5, 2.25, 3.0, 0.75, 5.5, 1.25, 2.0, 4.5, 3.75, 6.0],
        }
    )
    path = tmp_path / "data" / "shop.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    return path
