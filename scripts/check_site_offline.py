"""Check that the built docs site loads nothing from the network: no page or stylesheet of SITE_DIR
(default site/) pulls a script, stylesheet, image or font from a remote address.

    python scripts/check_site_offline.py [SITE_DIR]

Plain links to other sites (an <a href>) are fine: they load nothing until clicked.
"""

import re
import sys
from pathlib import Path

REMOTE = re.compile(r"""<(?:script|img|iframe|source)\b[^>]*\bsrc=["']?(?:https?:)?//|"""
                    r"""<link\b[^>]*\bhref=["']?(?:https?:)?//[^>]*>|@import\s+url\(["']?(?:https?:)?//""", re.I)
CSS_URL = re.compile(r"""url\(["']?(?:https?:)?//""", re.I)


def remote_assets(site: Path) -> list[str]:
    found = []
    for page in sorted(site.rglob("*.html")):
        found += [f"{page}: {m.group(0)[:120]}" for m in REMOTE.finditer(page.read_text(errors="replace"))]
    for sheet in sorted(site.rglob("*.css")):
        found += [f"{sheet}: {m.group(0)}" for m in CSS_URL.finditer(sheet.read_text(errors="replace"))]
    return found


if __name__ == "__main__":
    site = Path(sys.argv[1] if len(sys.argv) > 1 else "site")
    if not (site / "index.html").is_file():
        sys.exit(f"{site} holds no built site (index.html); run make docs first")
    problems = remote_assets(site)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(f"{len(problems)} remote asset(s) in {site}: the site must build and read offline")
    print(f"{site}: {sum(1 for _ in site.rglob('*.html'))} pages, no remote assets")
