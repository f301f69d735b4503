"""A study's storage: its place and Optuna storage (``store``), reads in plain SQL, the trial
cache, SQLite's write lock and the explorer's ledger table."""
