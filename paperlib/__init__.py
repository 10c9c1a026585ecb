"""paperlib.

Importing it fixes how this process computes, before torch loads its kernels: the pinned CPU kernels
(`paperlib.numerics`) and one intra-op thread (`paperlib.threads`), so that results are the same bytes on
every machine.
"""

from paperlib import errors as _errors
from paperlib import numerics as _numerics
from paperlib import threads as _threads

_numerics.apply()
try:
    _threads.configure()
except _errors.PaperlibError:  # a bad PAPERLIB_THREADS: reported in one line where it is used (the CLI, a run)
    pass
