"""moto prints no access log: benchmarks print only their tables, `./dev up` only its lines."""

from __future__ import annotations

import subprocess
import sys


def test_start_moto_serves_requests_without_printing() -> None:
    script = (
        "import urllib.request\n"
        "from webordinary.devkit.aws import start_moto\n"
        "moto = start_moto()\n"
        "for _ in range(3):\n"
        "    urllib.request.urlopen(moto.endpoint_url + '/moto-api/data.json').read()\n"
        "moto.reset()\n"
        "moto.stop()\n"
        "print('done')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout == "done\n"
    assert run.stderr == "", run.stderr
