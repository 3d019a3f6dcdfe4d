"""Tests against a live one-node SLURM (see conftest.py and start_slurm.sh)."""
