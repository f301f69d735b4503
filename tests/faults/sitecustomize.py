"""Fault injection for tests that run the command line in a subprocess.

Python imports ``sitecustomize`` at start-up; the tests put this folder first on
``PYTHONPATH`` and set ``$ATTEND_SEARCH_FAULT`` to make the evaluation of expensive metrics
misbehave as a broken evaluator, a full GPU or a deadlock would:

- ``raise:all`` every evaluation raises; ``raise:N`` only the N-th of this process;
- ``nan:N`` the N-th evaluation's proxies return NaN (as a dead network's synflow would);
- ``hang:N`` the N-th evaluation sleeps for an hour;
- ``pause:N`` the N-th evaluation waits until the test deletes the mark file, then goes on;
- ``export-hang`` an export hangs once its files are written, its folder still partial.

The N-th evaluation writes its spec digest to ``$ATTEND_SEARCH_FAULT_MARK`` first, so a test
knows when a trial is in the middle of its evaluation.
"""

import os

_FAULT = os.environ.get("ATTEND_SEARCH_FAULT")

if _FAULT == "export-hang":
    import time
    from pathlib import Path

    from attend_search.studies.export import network as export

    def _hang(folder):
        Path(os.environ["ATTEND_SEARCH_FAULT_MARK"]).write_text(str(folder))
        time.sleep(3600)

    export.verify_export = _hang
elif _FAULT:
    import time
    from pathlib import Path

    from attend_search.evaluators import proxies
    from attend_search.explorer.evaluation import Evaluation

    _kind, _, _which = _FAULT.partition(":")
    _original = Evaluation.expensive
    _proxies = proxies.zero_cost_all
    _calls = []

    def _nan_proxies(*args, **kwargs):
        return {name: float("nan") for name in _proxies(*args, **kwargs)}

    def _faulty(self, spec, metrics, report=None, clock=None):
        _calls.append(spec.digest)
        if _which == "all" or int(_which) == len(_calls):
            mark = os.environ.get("ATTEND_SEARCH_FAULT_MARK")
            if mark:
                Path(mark).write_text(spec.digest)
            if _kind == "hang":
                time.sleep(3600)
            if _kind == "pause":
                while Path(mark).exists():
                    time.sleep(0.1)
                return _original(self, spec, metrics, report, clock)
            if _kind == "nan":
                proxies.zero_cost_all = _nan_proxies
                try:
                    return _original(self, spec, metrics, report, clock)
                finally:
                    proxies.zero_cost_all = _proxies
            raise RuntimeError("CUDA out of memory (injected fault)")
        return _original(self, spec, metrics, report, clock)

    Evaluation.expensive = _faulty
