"""Progress bars for the front doors; the runner only reports Ticks to a callback."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .pipeline.runner import Tick

BAR_FORMAT = "{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]"


class Bars:
    """tqdm bars on stderr, one per stage, counting pictures (the CLI's and atlas.build's)."""

    def __init__(self, show: bool = True):
        self.show = show
        self.bars: dict[str, tqdm] = {}

    def __call__(self, tick: Tick) -> None:
        bar = self.bars.get(tick.stage)
        if bar is None:
            bar = self.bars[tick.stage] = tqdm(
                total=tick.total,
                desc=tick.stage,
                unit=tick.unit,
                file=sys.stderr,
                disable=not self.show or not tick.total,
                mininterval=0.5,
                bar_format=BAR_FORMAT,
            )
        bar.update(tick.done - bar.n)

    def close(self) -> None:
        """Close every bar."""
        for bar in self.bars.values():
            bar.close()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StepBar(Bars):
    """One bar that counts optimisation steps (a notebook's, via tqdm.auto): step n of a
    batch, over every batch the pictures needed."""

    def __call__(self, tick: Tick) -> None:
        if not tick.steps:
            return super().__call__(tick)
        from tqdm.auto import tqdm as auto

        total = tick.steps * tick.batches
        bar = self.bars.get(tick.stage)
        if bar is None:
            bar = self.bars[tick.stage] = auto(
                total=total, desc=tick.stage, unit="step", disable=not self.show
            )
        bar.update(int(tick.done / tick.total * total) - bar.n)
