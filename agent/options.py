"""Click options shared by more than one command (``analyst run`` and ``analyst eval``)."""

from __future__ import annotations

import click

resample_option = click.option(
    "--resample",
    default=2,
    show_default=True,
    type=click.IntRange(0, 10),
    help="when a reply resends a failure (a cell that failed, or its failing line with nothing new above "
    "it), draw up to N other replies (seeded sampling)",
)
