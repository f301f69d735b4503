"""Predicted and measured latency: the kernel model (``kernels``, ``predict``), device
profiles (``devices``, with the built-in YAMLs beside), calibration to measured latencies
(``calibrate``, ``board_csv``) and measurement on this machine (``measure``)."""
