"""What every program shares (jaxtl/commands/cli.py): `kill -USR1 PID` prints every thread's
Python stack of a running program on its stderr, and it goes on running; a program starts
without the libraries only some of its work needs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from jaxtl.commands.cli import STACKS_SIGNAL

PROGRAM = textwrap.dedent("""
    import threading, time
    from jaxtl.commands import cli

    def waiting_in_a_thread():
        time.sleep(30)

    def main(argv, options):
        threading.Thread(target=waiting_in_a_thread, name="helper", daemon=True).start()
        print("started", flush=True)
        time.sleep(3)
        print("still running", flush=True)

    cli.run(main, lambda: {})
""")


def test_the_stacks_signal_prints_every_threads_stack_and_the_program_goes_on():
    process = subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "started\n"
    time.sleep(0.3)
    process.send_signal(getattr(signal, STACKS_SIGNAL))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout == "still running\n"
    assert "Current thread" in stderr and "in main" in stderr
    assert "in waiting_in_a_thread" in stderr  # the other thread's stack too


def test_the_training_program_starts_without_scikit_learn():
    """scikit-learn (with SciPy's statistics and pandas, about 2 s) is imported where a metric
    is computed (jaxtl/metrics/classification.py): not by a `--check`, nor by each Grain worker
    process, which imports the program's main module again."""
    script = "import sys, jaxtl.main; print(sorted({name.split('.')[0] for name in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout
    for library in ("sklearn", "pandas"):
        assert f"'{library}'" not in loaded, loaded
