"""Drift-triggered retraining loop for the UCI Bank Marketing data.

The numbered scripts in ``module3/`` are thin command line entry points; the
logic lives here, one module per stage: ``prepare`` (job 0), ``drift`` (job 1),
``labels`` (job 2), ``retrain`` (job 3) and ``deploy`` (job 4, with one module
per target). ``cli``, ``config``, ``files`` and ``data`` are shared by all jobs.
"""
