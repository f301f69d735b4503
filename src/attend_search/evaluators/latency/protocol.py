"""How a latency is measured: warm-up, then rounds of timed runs, the lowest round median.

Kept apart from :mod:`.measure` (which needs PyTorch) so that the command line can show the
defaults without importing it. Twenty runs a round and ten rounds, the lowest median: on
a shared 2-core virtual machine, a second timing of the same 24 networks at 32 pixels
differed from the first by 3.4% (mean absolute) this way against 5.4% for the median of
five rounds of ten runs when quiet, 4.2% against 15.1% when busier (the latency docs).

Such a machine also slows down for minutes at a time, so networks timed together (a
calibration suite) are timed in passes over all of them, each network's latency the least
of its passes: on the same machine, 58 networks timed in four passes, the least of two
passes against the least of the other two, agree to 3.0% and Kendall tau 0.977, against
4.4% and 0.935 for one pass each (the latency docs).
"""

WARMUP = 5  # untimed runs first
REPEATS = 20  # timed runs per round
ROUNDS = 10  # rounds; the lowest of their medians is the latency
PASSES = 2  # passes over a suite of networks; a network's latency is its least
