"""Regenerate docs/console.png, the README's picture of the operator console.

It runs the console's end-to-end test (tests/test_console.py: a real headless
Chromium on a running eslhook, a fake switch replaying the bundled bridged-call
capture) with ESLHOOK_CONSOLE_SCREENSHOT pointing at the file, so the picture
always shows what the test saw.  Needs Debian's chromium and the playwright
package (the test extra).

    python scripts/console_screenshot.py [--out docs/console.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    args = parser.parse_args()
    env = dict(os.environ, ESLHOOK_CONSOLE_SCREENSHOT=str(args.out.resolve()),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-rs",
                          "tests/test_console.py"], cwd=ROOT, env=env)
    if run.returncode == 0 and args.out.exists():
        print("wrote %s" % args.out)
        return 0
    print("the console test failed or was skipped: %s not written" % args.out, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
