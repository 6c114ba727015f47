"""lightnets.search's space, evolution and front (docs/search.md, "What it does" 1, 3 and 6), on
fake latencies and scores: the space's fit to an input size, regularized evolution (within the
budget, the tournament winner mutated, the oldest aged out, proposals that do not depend on the
order results arrive), the Pareto front against a brute-force reference, and the choice of the
best.
"""

from __future__ import annotations

import random

import pytest
from _search_helpers import BUDGET, SPACE24, fake_acc, fake_ms

from lightnets.errors import ConfigError
from lightnets.search import front as front_mod
from lightnets.search import space
from lightnets.search.evolution import RegularizedEvolution

# ------------------------------------------------------------------------------ the space


def test_fit_space_keeps_kernels_that_fit_the_maps():
    fitted = space.fit_space(32)  # stride-1 stem: maps 32, 16, 16, 8, 8, 4 x4, 2, 2
    assert [max(max(k) for k in row.k) for row in fitted] == [11] * 5 + [7] * 4 + [3] * 2
    assert space.contains(space.smallest(fitted))
    table = space.sample(random.Random(0), fitted)
    from lightnets.models.arch import check_fits
    from lightnets.search.trials import architecture

    check_fits(architecture(table), 32, small_input=True)  # as lightnets train --arch checks it
    with pytest.raises(ConfigError, match="at least 17 px"):
        space.fit_space(16)


def test_cheapen_moves_one_field_to_a_cheaper_option():
    rng = random.Random(0)
    table = space.largest(SPACE24)
    steps = 0
    while table is not None:
        cheaper = space.cheapen(table, rng, SPACE24)
        if cheaper is not None:
            assert len(space.differences(table, cheaper)) == 1 and fake_ms(cheaper) < fake_ms(table)
        table, steps = cheaper, steps + 1
    assert steps > 20


# ------------------------------------------------------------------------------ evolution


def evolution(**kwargs) -> RegularizedEvolution:
    options = dict(seed=0, population=4, sample_size=2, lag=1, space=SPACE24)
    return RegularizedEvolution(fake_ms, BUDGET, **{**options, **kwargs})


def run_evolution(evo: RegularizedEvolution, n: int, score=lambda c: fake_acc(c.table)):
    for _ in range(n):
        c = evo.propose()
        evo.record(c.index, score(c))
    return evo.candidates


def test_proposals_stay_within_the_budget_and_are_new():
    candidates = run_evolution(evolution(), 30)
    assert all(
        fake_ms(c.table) <= BUDGET and c.predicted_ms == fake_ms(c.table) for c in candidates
    )
    assert len({c.table for c in candidates}) == 30
    assert all(space.contains(c.table, SPACE24) for c in candidates)
    assert [c.parent is None for c in candidates] == [True] * 4 + [False] * 26


def test_evolution_mutates_the_tournament_winner_and_ages_out_the_oldest():
    evo = evolution(population=3, sample_size=3)  # the tournament sees the whole population
    scores = {0: 90.0, 1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0}  # 0 is best but oldest
    for i in range(6):
        c = evo.propose()
        assert c.index == i
        if i >= 3:
            # the population: the 3 most recent scored candidates
            assert list(c.population) == [i - 3, i - 2, i - 1]
            assert c.parent == max(c.population, key=lambda j: scores[j])
            assert len(space.differences(evo.candidates[c.parent].table, c.table)) == 1
        evo.record(i, scores.get(i, 0.0))
    parents = [c.parent for c in evo.candidates]
    assert parents[3] == 0  # the best while it lives
    assert parents[4] == 3 and parents[5] == 4  # 0 aged out: the best of the younger ones


def test_a_tournament_draws_sample_size_members():
    evo = evolution(population=6, sample_size=2)
    run_evolution(evo, 12)
    for c in evo.candidates[6:]:
        assert len(c.population) == 6 and c.parent in c.population


def test_with_a_lag_proposals_wait_and_ignore_results_that_may_arrive_in_any_order():
    def scores_arrive(order_seed: int):
        """Two trials at a time, finishing in a random order."""
        evo, running, rng = evolution(lag=2), [], random.Random(order_seed)
        while len(evo.candidates) < 14:
            c = evo.propose()
            if c is None:  # waits for the oldest running trial (a slot may stay idle)
                assert running
                done = running.pop(rng.randrange(len(running)))
                evo.record(done.index, fake_acc(done.table))
                continue
            running.append(c)
            if len(running) == 2:
                done = running.pop(rng.randrange(2))
                evo.record(done.index, fake_acc(done.table))
        return [(c.table, c.parent) for c in evo.candidates]

    first = scores_arrive(0)
    assert all(scores_arrive(seed) == first for seed in (1, 2, 3))
    assert any(parent is not None for _, parent in first)


def test_a_budget_with_no_room_gives_up_with_a_clear_error():
    evo = RegularizedEvolution(
        fake_ms,
        fake_ms(space.smallest(SPACE24)),
        population=2,
        sample_size=2,
        space=SPACE24,
        max_tries=20,
    )
    assert evo.propose().table == space.smallest(SPACE24)
    with pytest.raises(ConfigError, match="raise --latency-ms"):
        evo.propose()


# ------------------------------------------------------------------------------ the front


def brute_force_front(points):
    return [p for p in points if not any(front_mod.dominates(q, p) for q in points)]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    points = [
        {"id": i, "latency_ms": rng.randint(1, 8), "acc": rng.randint(50, 60)} for i in range(40)
    ]  # small integers: many ties
    front = front_mod.pareto_front(points)
    assert sorted(p["id"] for p in front) == sorted(p["id"] for p in brute_force_front(points))
    assert [p["latency_ms"] for p in front] == sorted(p["latency_ms"] for p in front)


def test_best_is_the_highest_objective_measured_within_the_budget():
    points = [
        {"id": "a", "latency_ms": 4.0, "objective": 70.0},
        {"id": "b", "latency_ms": 6.0, "objective": 80.0},  # over the budget
        {"id": "c", "latency_ms": 3.0, "objective": 70.0},  # ties with a, faster
        {"id": "d", "latency_ms": None, "objective": 90.0},  # not measured
    ]
    assert front_mod.choose_best(points, 5.0)["id"] == "c"
    assert front_mod.choose_best(points, 2.0) is None


def test_the_smallest_network_of_the_space_is_smaller_than_mobilenet_v2_w035():
    """The widths reach down to about half of MixNet-S's so that a budget of MobileNetV2-0.35's
    latency leaves room to search; at 32 px the smallest has fewer parameters than it."""
    import lightnets
    from lightnets.profiling import count_params

    smallest = space.build_network(space.smallest(space.fit_space(32)), img_size=32, num_classes=10)
    zoo = lightnets.create_model("mobilenet_v2_w035", num_classes=10, small_input=True)
    assert count_params(smallest).learned < count_params(zoo).learned
    # dense 1x1s are the cheaper choice on CPU runtimes (space.DENSE), so the smallest has them
    assert all(row.pw == (1, 1) for row in space.smallest())
