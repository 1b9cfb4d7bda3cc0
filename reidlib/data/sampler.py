"""The PK identity sampler (torchreid's ``RandomIdentitySampler``), plain and distributed.

Each batch holds ``P = batch_size // num_instances`` identities with ``K = num_instances``
images each, as batch-hard triplet losses need.  One epoch, as in torchreid:

1. per identity: shuffle its indices; if it has fewer than K, draw K of them with
   replacement; cut the list into chunks of K (a last incomplete chunk is dropped);
2. while at least P identities still have chunks: pick P of them at random, and append
   one chunk of each to the stream.

The sampler yields the flat index stream; use it with
``DataLoader(batch_size=P * K, drop_last=True)`` (or :meth:`batches`).  Randomness
comes from a NumPy generator seeded with ``(seed, epoch)``: call :meth:`set_epoch` at
the start of every epoch (as with ``DistributedSampler``); the same seed and epoch give
the same stream.  ``len(sampler)`` is the exact length of the current epoch's stream
(torchreid's ``__len__`` is an upper bound, kept as :attr:`torchreid_length`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = [
    "RandomIdentitySampler",
    "DistributedRandomIdentitySampler",
    "ShuffleSampler",
    "EpochTaggedSampler",
    "SeededItems",
    "item_seed",
    "build_sampler",
    "SAMPLERS",
]

SAMPLERS = ("pk", "random")


class RandomIdentitySampler(Sampler[int]):
    """PK sampler: ``batch_size // num_instances`` identities x ``num_instances`` images.

    Args:
        pids: the identity (or training label) of every item of the dataset.
        batch_size: ``P * K``; must be a multiple of ``num_instances``.
        num_instances: K, the images per identity in a batch.
        seed: base seed; the epoch's generator is ``np.random.default_rng((seed, epoch))``.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0):
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances != 0:
            raise ValueError(
                f"batch_size={batch_size}, num_instances={num_instances}: expected num_instances >= 1 and "
                f"batch_size a positive multiple of num_instances (P identities x K images)"
            )
        self.pids = [int(p) for p in pids]
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = self.batch_size // self.num_instances
        self.seed = int(seed)
        self.epoch = 0
        index = defaultdict(list)
        for i, p in enumerate(self.pids):
            index[p].append(i)
        self.index_dic = dict(index)
        self.unique_pids = sorted(self.index_dic)
        if len(self.unique_pids) < self.num_pids_per_batch:
            raise ValueError(
                f"the dataset has {len(self.unique_pids)} identities but a batch needs P = "
                f"{self.num_pids_per_batch} (batch_size {batch_size} / num_instances {num_instances})"
            )
        self._cache: tuple[int, list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def torchreid_length(self) -> int:
        """torchreid's ``__len__``: sum over identities of ``max(n, K)`` rounded down to K."""
        k = self.num_instances
        return sum(max(len(v), k) - max(len(v), k) % k for v in self.index_dic.values())

    def epoch_indices(self, epoch: int | None = None) -> list[int]:
        """The flat index stream of an epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng((self.seed, epoch))
        k, p = self.num_instances, self.num_pids_per_batch
        chunks: dict[int, list[list[int]]] = {}
        for pid in self.unique_pids:
            idxs = np.asarray(self.index_dic[pid])
            if len(idxs) < k:
                idxs = rng.choice(idxs, size=k, replace=True)
            idxs = rng.permutation(idxs)
            n = len(idxs) // k
            chunks[pid] = [idxs[j * k:(j + 1) * k].tolist() for j in range(n)]
        available = [pid for pid in self.unique_pids if chunks[pid]]
        out: list[int] = []
        while len(available) >= p:
            sel = rng.choice(len(available), size=p, replace=False)
            chosen = [available[s] for s in sel]
            for pid in chosen:
                out.extend(chunks[pid].pop(0))
            available = [pid for pid in available if chunks[pid]]
        self._cache = (epoch, out)
        return out

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The epoch's stream cut into batches of ``batch_size``."""
        s = self.epoch_indices(epoch)
        b = self.batch_size
        return [s[i:i + b] for i in range(0, len(s), b)]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices())

    def __len__(self) -> int:
        return len(self.epoch_indices())


class DistributedRandomIdentitySampler(RandomIdentitySampler):
    """The PK stream split among ``num_replicas`` processes, batch by batch.

    Every rank builds the same epoch stream (same seed and epoch) and takes batches
    ``rank, rank + R, rank + 2R, ...``; the last ``len(batches) % R`` batches are dropped so
    that every rank has the same number of batches.  Each rank's batches stay PK-structured
    (use ``DataLoader(batch_size=batch_size, drop_last=True)`` on every rank; ``batch_size``
    is the per-rank batch).  Ranks' shards are disjoint and their union is the
    single-process stream (less the dropped tail).

    ``num_replicas``/``rank`` default to ``torch.distributed``'s when it is initialised.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None):
        super().__init__(pids, batch_size, num_instances, seed)
        if num_replicas is None or rank is None:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
                rank = dist.get_rank() if rank is None else rank
            else:
                num_replicas = 1 if num_replicas is None else num_replicas
                rank = 0 if rank is None else rank
        if num_replicas < 1 or not (0 <= rank < num_replicas):
            raise ValueError(f"rank={rank}, num_replicas={num_replicas}: expected 0 <= rank < num_replicas")
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)

    def rank_batches(self, epoch: int | None = None) -> list[list[int]]:
        b = self.batches(epoch)
        n = len(b) // self.num_replicas
        return b[self.rank: n * self.num_replicas: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter([i for batch in self.rank_batches() for i in batch])

    def __len__(self) -> int:
        return (len(self.batches()) // self.num_replicas) * self.batch_size


class ShuffleSampler(Sampler[int]):
    """A seeded random permutation per epoch (``set_epoch``), sharded over processes."""

    def __init__(self, n: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.n, self.seed, self.num_replicas, self.rank = n, seed, num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per = self.n // self.num_replicas
        return iter(perm[self.rank * per:(self.rank + 1) * per])

    def __len__(self) -> int:
        return self.n // self.num_replicas


def build_sampler(pids: Sequence[int], kind: str, batch_p: int, batch_k: int, seed: int = 0,
                  world_size: int = 1, rank: int = 0) -> Sampler:
    """The training sampler: the PK identity sampler (``kind="pk"``, ``batch_p`` identities x
    ``batch_k`` images, split over ``world_size`` processes) or a seeded shuffle (``"random"``)."""
    if kind == "random":
        return ShuffleSampler(len(pids), seed, world_size, rank)
    if kind != "pk":
        raise ValueError(f"unknown sampler {kind!r}; accepted: {', '.join(map(repr, SAMPLERS))}")
    n_ids = len(set(pids))
    if n_ids < batch_p:
        raise ValueError(
            f"the PK sampler needs at least P={batch_p} training identities, the training set has {n_ids}; "
            f"lower batch_p (e.g. --set batch_p={max(2, n_ids)})"
        )
    batch_size = batch_p * batch_k
    if world_size > 1:
        # every rank takes whole PK batches of batch_p / world identities (the global batch is split)
        if batch_p % world_size:
            raise ValueError(f"batch_p={batch_p} identities cannot be split over {world_size} processes; "
                             f"use a multiple of {world_size}")
        return DistributedRandomIdentitySampler(pids, batch_size // world_size, batch_k, seed=seed,
                                                num_replicas=world_size, rank=rank)
    return RandomIdentitySampler(pids, batch_size, batch_k, seed=seed)


# ----------------------------------------------------------------------------- seeded items
def item_seed(seed: int, rank: int, epoch: int, position: int) -> int:
    """The seed of one training item: a hash of ``(seed, rank, epoch, position)``."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, epoch, position]).generate_state(1)[0])


class EpochTaggedSampler(Sampler):
    """Wraps an index sampler so that it yields ``(epoch, position, index)`` keys.

    ``skip(n)`` makes the next iteration start at position ``n`` of the epoch's stream (a run
    resumed in the middle of an epoch); positions, and so the items' seeds, stay those of
    the uninterrupted stream.
    """

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.start = 0
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def skip(self, n: int) -> None:
        self.start = int(n)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for pos, idx in enumerate(self.sampler):
            if pos >= self.start:
                yield (self.epoch, pos, int(idx))

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """Reads ``(epoch, position, index)`` keys: seeds Python, NumPy and torch from
    :func:`item_seed` and returns ``base[index]``.  In the main process the generators'
    states are restored afterwards, so data loading never disturbs the training RNG."""

    def __init__(self, base: Dataset, seed: int, rank: int = 0):
        self.base = base
        self.seed = seed
        self.rank = rank

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        epoch, pos, index = key
        s = item_seed(self.seed, self.rank, epoch, pos)
        in_worker = torch.utils.data.get_worker_info() is not None
        if not in_worker:
            saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)
        try:
            return self.base[index]
        finally:
            if not in_worker:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])
