"""python -m jaxtl.commands.verify on a config without data checks the demo data and says so."""

from __future__ import annotations

from programs import other_libraries_info, run_programs

from jaxtl.config.files import load_config
from jaxtl.data.demo_store import demo_root


def test_verify_of_a_config_without_data_names_the_demo_data(tmp_path):
    overrides = [f"--config.data.cache_dir={tmp_path}", "--config.demo.num_patients=12",
                 "--config.demo.image_size=40", "--config.data.resolution=32"]
    (run,) = run_programs([("jaxtl.commands.verify", ["--config", "configs/eyepacs.py",
                                                      "--workers", "1", *overrides])])
    assert run.returncode == 0 and not run.traceback, run.stderr[-2000:]
    config = load_config("configs/eyepacs.py")
    config.data.cache_dir = str(tmp_path)
    config.demo.num_patients, config.demo.image_size = 12, 40
    last = run.stdout.splitlines()[-1]
    assert last.startswith("0 unreadable image(s) in train, val, test of the DEMO data "
                           f"({demo_root(config)}; no data.root set")
    # piped: its progress as plain lines, ending at every image
    assert "\r" not in run.stdout + run.stderr and other_libraries_info(run.stderr) == []
    assert "verify: image " in run.stderr and "(100%)" in run.stderr
