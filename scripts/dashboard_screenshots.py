"""Take the README's dashboard screenshots (docs/dashboard_*.png) with the browser tests'
setup: a real controller and trainer on 127.0.0.1:0 with a finished and a running search,
the dashboard, and Debian's headless Chromium (``make browser-tool`` installs it).

Usage: python scripts/dashboard_screenshots.py [OUT_DIR]   (default docs/)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    out = Path(argv[0]).resolve() if argv else ROOT / "docs"
    env = {**os.environ, "NASRL_DASHBOARD_SCREENSHOTS": str(out)}
    test = "tests/integration/test_dashboard_browser.py::test_layouts_fit_desktop_and_phone"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", test], cwd=ROOT, env=env, check=False
    )
    shots = sorted(out.glob("dashboard_*.png"))
    print("\n".join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in shots))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
