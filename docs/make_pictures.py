"""Draw the documentation's pictures with symbptt itself (docs/images/), so that every picture in
the docs is what the tool prints; the interactive page's screenshot is taken in headless
Chromium (Debian's chromium and chromium-driver, and selenium), after a click on h_2:

    python docs/make_pictures.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"

COMMANDS = [
    ["graph", "--T", "3", "--wrt", "W_h", "-o", "graph-rnn-W_h.svg"],
    ["graph", "--T", "3", "--wrt", "W_h", "-o", "graph-rnn-W_h.png"],
    ["graph", "--T", "4", "--wrt", "W_h", "--through", "h_2", "-o", "graph-rnn-through-h2.svg"],
    ["graph", "--T", "2", "--wrt", "W_h", "--model", "lstm", "-o", "graph-lstm-W_h.svg"],
    ["contributions", "--T", "20", "--wrt", "W_h", "--scale", "0.5,1,2", "-o", "contributions.png"],
]


def screenshot(target: Path) -> None:
    """The interactive page of dL/dW_h at T = 3 after a click on h_2."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "page.html"
        argv = ["html", "--T", "3", "--wrt", "W_h", "-o", str(page)]
        subprocess.run([sys.executable, "-m", "symbptt", *argv], check=True)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--window-size=1500,900"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(page.as_uri())
            while driver.execute_script("return document.body.dataset.ready") != "1":
                time.sleep(0.05)
            driver.execute_script(
                "[...document.querySelectorAll('#graph g.node')]"
                ".find(g => g.querySelector('title').textContent === 'h_2')"
                ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
            )
            driver.save_screenshot(str(target))
        finally:
            driver.quit()


def main() -> int:
    IMAGES.mkdir(exist_ok=True)
    for argv in COMMANDS:
        command = [sys.executable, "-m", "symbptt", *argv, "--force"]
        print("symbptt", " ".join(argv), flush=True)
        subprocess.run(command, cwd=IMAGES, check=True, stdout=subprocess.DEVNULL)
    print("the interactive page, in headless Chromium", flush=True)
    screenshot(IMAGES / "page.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
