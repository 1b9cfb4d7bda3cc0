"""reidlib.data.sampler: PK structure, torchreid semantics, determinism, distributed shards."""

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from reidlib.data.sampler import DistributedRandomIdentitySampler, RandomIdentitySampler


def _pids(seed=0, n_ids=13, lo=1, hi=11):
    rng = np.random.default_rng(seed)
    pids = []
    for p in range(n_ids):
        pids += [100 + p] * int(rng.integers(lo, hi))
    rng.shuffle(pids)
    return pids


def test_every_batch_is_p_ids_by_k():
    pids = _pids()
    s = RandomIdentitySampler(pids, batch_size=12, num_instances=4)
    for epoch in range(3):
        s.set_epoch(epoch)
        stream = list(s)
        assert len(stream) == len(s) > 0 and len(stream) % 12 == 0
        for b in s.batches():
            assert len(b) == 12
            c = Counter(pids[i] for i in b)
            assert len(c) == 3 and set(c.values()) == {4}
            # chunks of K are contiguous and homogeneous
            for j in range(0, 12, 4):
                assert len({pids[i] for i in b[j:j + 4]}) == 1


def test_torchreid_semantics():
    pids = _pids(1, n_ids=9, lo=1, hi=14)
    k = 4
    s = RandomIdentitySampler(pids, batch_size=8, num_instances=k, seed=3)
    stream = s.epoch_indices()
    counts = Counter(pids)
    chunks_used = Counter()
    seen_big = Counter()
    for j in range(0, len(stream), k):
        ch = stream[j:j + k]
        pid = pids[ch[0]]
        chunks_used[pid] += 1
        if counts[pid] >= k:
            assert len(set(ch)) == k  # without replacement
            seen_big.update(ch)
    # no index of an identity with >= K images is used twice in an epoch
    assert max(seen_big.values()) == 1
    # each identity yields at most max(n, K) // K chunks; when the loop stops fewer than P remain
    avail = {p: max(n, k) // k for p, n in counts.items()}
    assert all(chunks_used[p] <= avail[p] for p in counts)
    left = [p for p in counts if chunks_used[p] < avail[p]]
    assert len(left) < 2
    assert s.torchreid_length == sum(max(n, k) - max(n, k) % k for n in counts.values())
    assert len(s) <= s.torchreid_length


def test_determinism_and_epochs():
    pids = _pids(2)
    a = RandomIdentitySampler(pids, 8, 2, seed=5)
    b = RandomIdentitySampler(pids, 8, 2, seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    e0 = a.epoch_indices(0)
    assert list(a) != e0  # epochs differ
    assert RandomIdentitySampler(pids, 8, 2, seed=6).epoch_indices(0) != e0


@pytest.mark.parametrize("world", [1, 2, 3])
def test_distributed_shards(world):
    pids = _pids(4, n_ids=20, lo=4, hi=12)
    single = RandomIdentitySampler(pids, 8, 4, seed=9)
    single.set_epoch(2)
    ref_batches = single.batches()
    n = len(ref_batches) // world
    shards = []
    for r in range(world):
        d = DistributedRandomIdentitySampler(pids, 8, 4, seed=9, num_replicas=world, rank=r)
        d.set_epoch(2)
        got = list(d)
        assert len(got) == len(d) == n * 8
        shards.append([got[i:i + 8] for i in range(0, len(got), 8)])
    # disjoint (all identities here have >= K images, so indices are unique in the stream)
    flat = [i for sh in shards for b in sh for i in b]
    assert len(flat) == len(set(flat))
    # union, interleaved back in order, is the single-process stream (less the dropped tail)
    merged = [shards[j % world][j // world] for j in range(n * world)]
    assert merged == ref_batches[: n * world]
    for sh in shards:
        for b in sh:
            assert set(Counter(pids[i] for i in b).values()) == {4}


class _Toy(Dataset):
    def __init__(self, pids):
        self.pids = pids

    def __len__(self):
        return len(self.pids)

    def __getitem__(self, i):
        return {"index": i, "pid": self.pids[i]}


def test_with_dataloader():
    pids = _pids(5)
    ds = _Toy(pids)
    s = RandomIdentitySampler(ds.pids, 8, 4)
    dl = DataLoader(ds, batch_size=8, sampler=s, drop_last=True)
    batches = list(dl)
    assert len(batches) == len(dl) == len(s) // 8
    for b in batches:
        assert sorted(Counter(b["pid"].tolist()).values()) == [4, 4]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(s)


def test_errors():
    with pytest.raises(ValueError, match="multiple of num_instances"):
        RandomIdentitySampler([0, 1, 2], 10, 4)
    with pytest.raises(ValueError, match="2 identities but a batch needs P = 4"):
        RandomIdentitySampler([0, 0, 1, 1], 16, 4)
    with pytest.raises(ValueError, match="rank=2, num_replicas=2"):
        DistributedRandomIdentitySampler(_pids(), 8, 4, num_replicas=2, rank=2)
