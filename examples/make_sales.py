"""Builds examples/sales.csv: a synthetic but realistic two-year sales ledger (fixed seed, so reproducible).

Trends hidden in it for the analyst to find: steady growth (~2%/month), a December peak, the West
region growing fastest, and a price cut on Gadgets in mid-2024 that raised units sold.
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(7)
months = pd.date_range("2023-01-01", "2024-12-01", freq="MS")
regions = {"North": 1.0, "South": 0.8, "East": 1.1, "West": 0.7}
growth = {"North": 0.012, "South": 0.010, "East": 0.015, "West": 0.035}
products = {"Widgets": 12.0, "Gadgets": 45.0, "Gizmos": 28.0}
rows = []
for i, month in enumerate(months):
    season = 1.35 if month.month == 12 else (1.1 if month.month == 11 else 1.0)
    for region, size in regions.items():
        for product, price in products.items():
            if product == "Gadgets" and month >= pd.Timestamp("2024-07-01"):
                price, boost = price * 0.85, 1.3
            else:
                boost = 1.0
            base = 120 * size * (1 + growth[region]) ** i * season * boost
            units = int(rng.poisson(base * (0.5 if product == "Gadgets" else 1.0)))
            rows.append(
                {
                    "month": month.date().isoformat(),
                    "region": region,
                    "product": product,
                    "units": units,
                    "unit_price": round(price * rng.uniform(0.97, 1.03), 2),
                }
            )
frame = pd.DataFrame(rows)
frame["revenue"] = (frame["units"] * frame["unit_price"]).round(2)
frame.to_csv(Path(__file__).with_name("sales.csv"), index=False)
print(frame.shape)
