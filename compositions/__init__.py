"""Compositions: Flow Builder's saved flows as plain, typed data (issue 13).

A composition names its inputs and an ordered list of steps; each step runs one action
with inputs that are literals or references to the composition's inputs or to an earlier
step's output, optionally only when a Decision holds, optionally once per element of a
list (a Loop). Nothing in it is code. :mod:`compositions.check` validates one against the
actions' typed inputs and outputs before anything runs.
"""
