"""Exports: one network's files (``network``), an export run over a study (``run``), the
folders and manifest, model cards and the checks of exported files (``verify``)."""
