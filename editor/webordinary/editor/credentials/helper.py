"""`git credential` helper: asks the credential proxy, per request, for the repository's token.

Configured by the editor as `credential.helper`; reads WEBORDINARY_EDITOR_CREDENTIALS_URL and
the placeholder key file from the environment. Standard library only (it starts per request).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "get":
        return 0  # store / erase: nothing is kept anywhere
    url = os.environ.get("WEBORDINARY_EDITOR_CREDENTIALS_URL", "")
    token_file = os.environ.get("WEBORDINARY_EDITOR_CREDENTIALS_TOKEN_FILE", "")
    if not url or not token_file:
        return 0
    try:
        with open(token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError:
        return 0
    request = urllib.request.Request(
        url.rstrip("/") + "/git/credential", data=sys.stdin.read().encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            sys.stdout.write(response.read().decode())
    except (urllib.error.URLError, OSError):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
