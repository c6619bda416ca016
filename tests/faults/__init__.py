"""Fault tests: envctl under bad input, broken disks, locked databases, hung engines and signals.

The promise every test here checks, each against real components (real processes and
signals, the real Docker engine, a small tmpfs for a full disk, a second process holding
the records database):

- no traceback: every fault ends in one line naming what is wrong, where, and what to do,
  with exit code 2 for bad input, 1 for failures, 143 for SIGTERM and 130 for SIGINT;
- nothing half-written: files are written to a temporary name and renamed, registrations
  and prefixes are complete or absent, finished work is shown (and saved) before a
  database error is reported;
- nothing written outside the named paths;
- every child process and container gone after any signal.
"""
