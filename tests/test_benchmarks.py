"""The benchmarks' quick modes, run as CI runs them."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from attend_search.evaluators.proxies import PROXIES

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_proxy_speed_quick_mode_times_every_proxy_and_holds_synflow_to_its_reference():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_proxy_speed.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = dict(re.findall(r"^(\w[\w ]*?)\s+(\d+)$", done.stdout, re.M))
    assert set(rows) == {*PROXIES, "all together"}
    deviation = re.search(r"largest relative deviation of the fast path (\S+)$", done.stdout, re.M)
    assert float(deviation.group(1)) < 1e-6
