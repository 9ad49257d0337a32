"""The normaliser of data-parallel training: max(mean num_fg over the ranks, 1).

YOLOX divides a batch's loss by N = max(num_fg, 1). When R ranks each take
B/R images and their gradients are averaged (DistributedDataParallel), every
rank must divide by the same N for the average to be the gradient of the
whole batch's loss; MMDetection's choice, followed here, is the mean num_fg
over the ranks. A rank knows its own num_fg only once its assignment has
run, so the all-reduce happens inside the loss's forward, between the C
forward and the loss values (``_run.Run``).

Every check that can fail is made when ``MeanOverRanks`` is built, before
the C forward, so a misconfigured rank raises instead of entering the
collective.
"""

import torch

__all__ = []  # private module

NAME = "mean_over_ranks"  # the user's spelling of this normaliser


def _torch_distributed():
    """torch.distributed, or RuntimeError when this PyTorch build lacks it."""
    import torch.distributed as dist
    if not dist.is_available():
        raise RuntimeError("normalizer=%r needs torch.distributed, which this PyTorch build does not "
                           "have; use a PyTorch built with distributed support, or pass "
                           "normalizer=None (or a number) for single-process training" % NAME)
    return dist


def is_initialized():
    """Whether torch.distributed is there and has a process group: when the
    mmdet preset's normaliser is the mean over ranks (MMDetection's
    reduce_mean is a no-op otherwise)."""
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


class MeanOverRanks:
    """Called with this rank's num_fg, all-reduces it over ``process_group``
    and returns max(sum / group size, 1). A collective: every rank of the
    group must make the same call.

    process_group: None (the default group) or a group from
    ``torch.distributed.new_group`` that this process belongs to.
    """

    def __init__(self, process_group=None):
        dist = _torch_distributed()
        if not dist.is_initialized():
            raise RuntimeError("normalizer=%r needs an initialised process group: call "
                               "torch.distributed.init_process_group first (torch.distributed.run "
                               "sets up its environment), or pass normalizer=None for "
                               "single-process training" % NAME)
        # new_group gives the ranks outside it a placeholder, not a group.
        outside = process_group is getattr(dist.GroupMember, "NON_GROUP_MEMBER", None)
        if outside or (isinstance(process_group, dist.ProcessGroup) and dist.get_rank(process_group) < 0):
            raise ValueError("process_group does not contain this process (global rank %d): pass a "
                             "group it belongs to, or None for the default group; on ranks outside "
                             "the group, call yolox_loss without normalizer=%r"
                             % (dist.get_rank(), NAME))
        if process_group is not None and not isinstance(process_group, dist.ProcessGroup):
            raise TypeError("process_group must be None or a group from torch.distributed.new_group, "
                            "got %r" % (process_group,))
        self.dist = dist
        self.group = process_group
        self.size = dist.get_world_size(process_group)
        # NCCL reduces CUDA tensors only; the count is one number either way.
        self.device = (torch.device("cuda", torch.cuda.current_device())
                       if dist.get_backend(process_group) == "nccl" else torch.device("cpu"))

    def __call__(self, num_fg):
        # float64 holds any count exactly (up to 2^53) and every backend reduces it.
        count = torch.tensor([float(num_fg)], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(count, op=self.dist.ReduceOp.SUM, group=self.group)
        return max(float(count.item()) / self.size, 1.0)
