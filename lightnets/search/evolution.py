"""Regularized evolution under a latency budget ("Regularized Evolution for Image Classifier
Architecture Search", Real et al., arXiv:1802.01548, Algorithm 1), as the proposals of a search
that trains several candidates at a time.

Candidate i is a pure function of the seed and the scores of candidates 0 .. i - lag:

- the first `population` candidates are drawn at random (`space.sample`) and, while over the
  budget, made cheaper one field at a time (`space.cheapen`);
- later ones: the population is the `population` most recent scored candidates among
  0 .. i - lag (aging: the oldest drops out as a new one comes in); a tournament draws
  `sample_size` of them, and the winner (highest score) is mutated (`space.mutate`, one field of
  one row) until the child is new and within the budget.

`lag` is the number of trials that run at once: candidate i is proposed only once candidates up
to i - lag have scores, and never looks at later ones, so the order in which concurrent trials
finish does not change the proposals, and a search that is stopped and replayed proposes the
same candidates again. Each candidate draws from its own generator, `Random(f"{seed}/{i}")`.

Deviation from the paper: a child identical to an earlier candidate is drawn again (training
the same network twice would waste a trial); the paper keeps duplicates.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from lightnets.errors import ConfigError
from lightnets.search import space as space_mod

MAX_TRIES = 200  # draws (samples or mutations) per candidate before giving up


@dataclass(frozen=True)
class Candidate:
    """One proposed network: its table, predicted latency and where it came from."""

    index: int
    table: tuple
    predicted_ms: float
    parent: int | None = None  # the tournament winner it mutates; None: sampled
    population: tuple[int, ...] = ()  # the candidates the tournament drew from


class RegularizedEvolution:
    """Proposes candidates one at a time (`propose`) and takes their scores (`record`).

    Args:
        predict: table -> predicted latency in ms on the target.
        budget_ms: a candidate's predicted latency must not exceed it.
        seed: the seed of every candidate's generator.
        population, sample_size: the paper's P and S.
        lag: trials running at once (see the module docstring).
        space: the search space (e.g. `space.fit_space(img_size)`).
    """

    def __init__(
        self,
        predict: Callable[[tuple], float],
        budget_ms: float,
        *,
        seed: int = 0,
        population: int = 10,
        sample_size: int = 3,
        lag: int = 1,
        space: tuple = space_mod.MIXNET_S_SPACE,
        max_tries: int = MAX_TRIES,
    ):
        if not 1 <= sample_size <= population:
            raise ConfigError(
                f"sample_size must be between 1 and the population ({population}), "
                f"got {sample_size}"
            )
        if lag < 1:
            raise ConfigError(f"lag must be >= 1, got {lag}")
        self.predict, self.budget_ms = predict, budget_ms
        self.seed, self.population, self.sample_size = seed, population, sample_size
        self.lag, self.space, self.max_tries = lag, space, max_tries
        self.candidates: list[Candidate] = []
        self.scores: dict[int, float | None] = {}  # index -> score; None: the trial failed
        self._seen: set[tuple] = set()

    def ready(self) -> bool:
        """Whether the next candidate's inputs (the scores up to index - lag) are all in."""
        last = len(self.candidates) - self.lag
        return len(self.candidates) < self.population or all(
            i in self.scores for i in range(last + 1)
        )

    def propose(self) -> Candidate | None:
        """The next candidate, or None while the scores it depends on are not all in."""
        if not self.ready():
            return None
        i = len(self.candidates)
        rng = random.Random(f"{self.seed}/{i}")
        members = self.members(i)
        if i < self.population or not members:
            candidate = self._sampled(i, rng)
        else:
            candidate = self._mutated(i, rng, members)
        self.candidates.append(candidate)
        self._seen.add(candidate.table)
        return candidate

    def record(self, index: int, score: float | None) -> None:
        """The score of candidate `index` (higher is better; None for a failed trial)."""
        if not 0 <= index < len(self.candidates):
            raise ConfigError(f"no candidate {index} was proposed")
        self.scores[index] = score

    def members(self, i: int) -> list[int]:
        """The population candidate i's tournament draws from: the `population` most recent
        candidates with a score among 0 .. i - lag."""
        scored = [j for j in range(i - self.lag + 1) if self.scores.get(j) is not None]
        return scored[-self.population :]

    # ---------------------------------------------------------------- moves

    def _sampled(self, i: int, rng: random.Random) -> Candidate:
        for _ in range(self.max_tries):
            table = space_mod.sample(rng, self.space)
            ms = self.predict(table)
            while ms > self.budget_ms and table is not None:
                table = space_mod.cheapen(table, rng, self.space)
                ms = self.predict(table) if table is not None else ms
            if table is not None and ms <= self.budget_ms and table not in self._seen:
                return Candidate(i, table, ms)
        raise self._gave_up(i, "random networks made cheaper")

    def _mutated(self, i: int, rng: random.Random, members: list[int]) -> Candidate:
        drawn = rng.sample(members, min(self.sample_size, len(members)))
        winner = max(drawn, key=lambda j: (self.scores[j], j))  # a tie: the younger
        parent = self.candidates[winner].table
        for _ in range(self.max_tries):
            table = space_mod.mutate(parent, rng, self.space)
            if table in self._seen:
                continue
            ms = self.predict(table)
            if ms <= self.budget_ms:
                return Candidate(i, table, ms, parent=winner, population=tuple(members))
        raise self._gave_up(i, f"mutations of candidate {winner}")

    def _gave_up(self, i: int, what: str) -> ConfigError:
        return ConfigError(
            f"candidate {i}: none of {self.max_tries} {what} is both new and within "
            f"{self.budget_ms:g} ms (predicted); the budget leaves the space too little room: "
            "raise --latency-ms or run fewer --trials"
        )
