"""Range splitting over ranks and workers, checked against naive enumeration."""

import itertools

import pytest

from scm_dist.data.split import balanced_range, batches_done, logical_worker, segments, worker_batches


def _positions(order, counts, segs):
    """Global (shard, index) pairs named by segments."""
    return [(s.shard, i) for s in segs for i in range(s.first, s.stop)]


@pytest.mark.parametrize(
    "total,ranks,workers", [(10, 3, 2), (7, 4, 3), (3, 5, 2), (0, 2, 2), (100, 8, 4), (41, 3, 1)]
)
def test_ranks_and_workers_cover_every_sample_once(total, ranks, workers):
    counts = [total // 3, total // 3, total - 2 * (total // 3)]
    seen = []
    for r in range(ranks):
        r0, r1 = balanced_range(total, ranks, r)
        for w in range(workers):
            w0, w1 = balanced_range(r1 - r0, workers, w)
            seen += _positions([0, 1, 2], counts, segments([0, 1, 2], counts, r0 + w0, r0 + w1))
    assert sorted(seen) == [(s, i) for s in range(3) for i in range(counts[s])]
    sizes = [balanced_range(total, ranks, r) for r in range(ranks)]
    assert max(b - a for a, b in sizes) - min(b - a for a, b in sizes) <= 1


def test_segments_follow_a_shard_permutation():
    counts = [3, 5, 2, 4]
    order = [2, 0, 3, 1]
    flat = [(s, i) for s in order for i in range(counts[s])]  # naive concatenation
    for start, stop in itertools.combinations(range(len(flat) + 1), 2):
        assert _positions(order, counts, segments(order, counts, start, stop)) == flat[start:stop]


@pytest.mark.parametrize("steps,workers", [(7, 3), (2, 4), (9, 1), (8, 4)])
def test_round_robin_bookkeeping_matches_a_simulated_dataloader(steps, workers):
    quotas = worker_batches(steps, workers)
    assert sum(quotas) == steps
    # naive round robin over workers that still have batches
    sequence, left = [], list(quotas)
    while any(left):
        for w in range(workers):
            if left[w]:
                sequence.append(w)
                left[w] -= 1
    for consumed in range(steps + 1):
        done = batches_done(consumed, workers)
        assert done == [sequence[:consumed].count(w) for w in range(workers)]
        # after a resume, physical worker p plays logical_worker(p): the rest of the
        # sequence must come out of a fresh round robin over the remaining quotas
        remaining = [
            quotas[logical_worker(p, consumed, workers)] - done[logical_worker(p, consumed, workers)]
            for p in range(workers)
        ]
        resumed = []
        while any(remaining):
            for p in range(workers):
                if remaining[p]:
                    resumed.append(logical_worker(p, consumed, workers))
                    remaining[p] -= 1
        assert resumed == sequence[consumed:]


def test_missing_part_is_an_error():
    with pytest.raises(ValueError, match="part 3 of 3"):
        balanced_range(10, 3, 3)
