"""How a latency is measured: warm-up, then rounds of timed runs, the lowest round median.

Kept apart from :mod:`.measure` (which needs PyTorch) so that the command line can show the
defaults without importing it. Twenty runs a round and ten rounds: on this project's shared
2-core machine, a second timing of the same 24 networks at 32 pixels differed from the
first by 4% (mean absolute) this way, by 12% with five rounds of ten runs (the docs' latency
page has the figures).
"""

WARMUP = 5  # untimed runs first
REPEATS = 20  # timed runs per round
ROUNDS = 10  # rounds; the lowest of their medians is the latency
