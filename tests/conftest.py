import os

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
