"""Progress: a tqdm bar on a terminal, plain lines (every 10% or minute, and at the end) in a
file or pipe."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from jaxtl.core import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(total, clock, stream, **kwargs):
    return progress.PlainProgress(total, desc="train", unit="step", stream=stream, clock=clock,
                                  **kwargs)


def test_a_line_every_tenth_of_the_work_and_one_at_the_end():
    clock, stream = Clock(), io.StringIO()
    bar = plain(25, clock, stream)
    for _ in range(25):
        clock.now += 2.0
        bar.update(1)
    bar.set_postfix(loss="0.500")
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    # 10% of 25 is 2.5 steps: a line at steps 3, 6, ..., 24, then the last at 25
    assert [line.split(",")[0] for line in lines] == [
        f"train: step {n}/25 ({100 * n / 25:.0f}%)" for n in (3, 6, 9, 12, 15, 18, 21, 24, 25)]
    assert lines[0] == "train: step 3/25 (12%), 6 s, 0.5 step/s"
    assert lines[-1] == "train: step 25/25 (100%), 50 s, 0.5 step/s, loss=0.500"
    assert "\r" not in stream.getvalue()


def test_a_line_every_minute_when_the_work_is_slow_and_none_twice_for_the_same_count():
    clock, stream = Clock(), io.StringIO()
    bar = plain(1000, clock, stream, initial=500)  # a resumed run: the rate counts this session
    clock.now = 59.0
    bar.update(1)
    clock.now = 61.0
    bar.update(1)
    clock.now = 130.0
    bar.update(1)
    bar.close()  # nothing new since the last line
    assert stream.getvalue().splitlines() == [
        "train: step 502/1000 (50%), 61 s, 0.0328 step/s",
        "train: step 503/1000 (50%), 130 s, 0.0231 step/s"]


def test_without_a_total_and_disabled():
    clock, stream = Clock(), io.StringIO()
    bar = plain(None, clock, stream, every_seconds=10.0)
    clock.now = 10.0
    bar.update(2000)
    assert stream.getvalue() == "train: step 2000, 10 s, 200 step/s\n"
    quiet = plain(10, clock, stream, disable=True)
    quiet.update(10)
    quiet.close()
    assert stream.getvalue().count("\n") == 1


def test_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch, capsys):
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    with progress.bar(3, desc="x", unit="step", mininterval=5.0) as bar:
        assert isinstance(bar, tqdm)
    assert "\r" in capsys.readouterr().err  # tqdm's own bar
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert list(progress.track(range(4), total=4, desc="verify", unit="image",
                               mininterval=1.0)) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("verify: image 4/4 (100%)")


@pytest.mark.parametrize("ttys, expected", [((True, True), True), ((True, False), False),
                                            ((False, False), False)])
def test_on_terminal_needs_every_stream_a_terminal(ttys, expected):
    streams = [type("S", (), {"isatty": lambda self, t=t: t})() for t in ttys]
    assert progress.on_terminal(streams) is expected
    assert progress.on_terminal([io.StringIO()]) is False
