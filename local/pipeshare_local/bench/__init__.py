"""`make bench`: see __main__.py (python -m pipeshare_local.bench)."""
