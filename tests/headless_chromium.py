"""A screenshot of a local HTML page taken by headless Chromium, and where the page laid out its
images.

The browser is Qt WebEngine (Chromium's content layer) from the PyQt6-WebEngine wheels of the
test extra: no browser download, no display. `screenshot(page, png)` runs this file as a script
in its own process (Qt wants its application on the main thread, once per process), which loads
the page in a QWebEngineView on Qt's offscreen platform, sizes the view to the whole page, waits
until the page has painted and two grabs of the view agree, saves the grab as a PNG and prints
the layout that the page's JavaScript reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

# Qt's offscreen platform: no X server. Software rendering (--disable-gpu): CI has no GPU, and
# the screenshot's pixels are then the same on every machine. The sandbox is off because
# Chromium refuses it as root (CI runs as root) and it needs user namespaces besides; the page
# is the test's own local file. A device pixel is a CSS pixel, so an image drawn at its natural
# size covers exactly its width x height pixels of the screenshot.
ENVIRONMENT = {
    "QT_QPA_PLATFORM": "offscreen",
    "QTWEBENGINE_DISABLE_SANDBOX": "1",
    "QTWEBENGINE_CHROMIUM_FLAGS": "--disable-gpu --disable-checker-imaging --force-device-scale-factor=1",
    "QT_SCALE_FACTOR": "1",
}
TIMEOUT_S = 90

# The page's size and, per <img> in document order, its alt text, whether Chromium decoded it
# and its border box in page coordinates (CSS pixels).
LAYOUT_SCRIPT = """JSON.stringify({
  width: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight,
  images: Array.from(document.images, image => {
    const box = image.getBoundingClientRect();
    return {alt: image.alt, decoded: image.complete && image.naturalWidth > 0,
            left: box.left + window.scrollX, top: box.top + window.scrollY,
            width: box.width, height: box.height};
  }),
  user_agent: navigator.userAgent,
})"""
# Sets the title once the renderer lays the page out at the view's new height, its fonts are
# loaded, every image is decoded (ready to draw, not left for a later frame) and it has
# produced two frames since.
PAINTED_SCRIPT = """(function waitForHeight() {
  if (window.innerHeight < document.documentElement.scrollHeight) {
    return requestAnimationFrame(waitForHeight);
  }
  Promise.all([document.fonts.ready, ...Array.from(document.images, i => i.decode())])
    .then(() => requestAnimationFrame(() => requestAnimationFrame(() => {
      document.title = "painted";
    })));
})()"""
# Chromium's frames reach Qt's view asynchronously: the screenshot is the grab once this many
# grabs in a row, GRAB_INTERVAL_MS apart, are the same.
STABLE_GRABS = 5
GRAB_INTERVAL_MS = 200


@dataclasses.dataclass(frozen=True)
class Box:
    alt: str
    decoded: bool
    left: float
    top: float
    width: float
    height: float


@dataclasses.dataclass(frozen=True)
class Layout:
    width: int
    height: int
    images: list[Box]
    user_agent: str


def screenshot(page: pathlib.Path, png: pathlib.Path) -> Layout:
    """Loads `page` in headless Chromium, saves the whole page as `png` and returns its layout.
    Fails (AssertionError with the browser's output) if the page does not load or paint."""
    result = subprocess.run([sys.executable, __file__, str(page), str(png)],
                            check=False, capture_output=True, text=True, timeout=TIMEOUT_S,
                            env=dict(os.environ, **ENVIRONMENT))
    assert result.returncode == 0, f"browser exit {result.returncode}:\n{result.stderr[-3000:]}"
    layout = json.loads(result.stdout.splitlines()[-1])
    return Layout(**(layout | {"images": [Box(**box) for box in layout["images"]]}))


def _main(page: pathlib.Path, png: pathlib.Path) -> int:
    from PyQt6 import sip
    from PyQt6.QtCore import QTimer, QUrl
    from PyQt6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile
    from PyQt6.QtWebEngineWidgets import QWebEngineView
    from PyQt6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    profile = QWebEngineProfile()  # off the record: nothing written to the home folder
    web_page = QWebEnginePage(profile)
    view = QWebEngineView()
    view.setPage(web_page)
    view.resize(1200, 800)
    view.show()
    state: dict = {"previous": None, "same": 0}

    def fail(message: str) -> None:
        print(message, file=sys.stderr)
        app.exit(1)

    def grab_until_stable() -> None:
        image = view.grab().toImage()
        same = image.size() == view.size() and image == state["previous"]
        state["previous"], state["same"] = image, state["same"] + 1 if same else 1
        if state["same"] < STABLE_GRABS:
            QTimer.singleShot(GRAB_INTERVAL_MS, grab_until_stable)
        elif not image.save(str(png)):
            fail(f"could not write {png}")
        else:
            view.page().runJavaScript(LAYOUT_SCRIPT, finish)

    def finish(layout: str) -> None:
        print(layout)
        app.quit()

    def resize_to_page(layout: str) -> None:
        size = json.loads(layout)
        view.resize(size["width"], size["height"])
        view.page().runJavaScript(PAINTED_SCRIPT)

    def painted(title: str) -> None:
        if title == "painted":
            grab_until_stable()

    def loaded(ok: bool) -> None:
        if not ok:
            return fail(f"Chromium could not load {page}")
        view.page().runJavaScript(LAYOUT_SCRIPT, resize_to_page)

    view.titleChanged.connect(painted)
    view.loadFinished.connect(loaded)
    view.load(QUrl.fromLocalFile(str(page.resolve())))
    QTimer.singleShot((TIMEOUT_S - 10) * 1000,
                      lambda: fail(f"{page} did not load and paint in {TIMEOUT_S - 10} s"))
    code = app.exec()
    for qt_object in (view, web_page, profile):  # a profile outlives its pages
        sip.delete(qt_object)
    return code


if __name__ == "__main__":
    sys.exit(_main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])))
