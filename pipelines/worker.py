"""What every pipeline worker sets up once, in ``DoFn.setup``."""

from __future__ import annotations


def one_blas_thread():
    """Limit numpy's BLAS to one thread in this worker process; keep the returned limiter alive.

    Workers already fill every core (one per core locally, one per vCPU on
    Dataflow), so more BLAS threads only compete for them. And a single thread
    sums in a fixed order: the same audio gives the same float bits, and so the
    same shard bytes, on every machine whatever its core count.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
