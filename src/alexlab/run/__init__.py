"""Runs: one directory per run, for its whole life, however many jobs it takes (docs/runs.md).

(Nothing heavy is imported here: the config resolvers import ``identity`` before torch loads.)"""
