"""Lockfile writers: Poetry (`poetry.py`) and conda (`conda.py`), sharing one subprocess wrapper."""
