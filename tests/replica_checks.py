"""Comparisons the data-parallel tests share: every rank's results, and a job's against another's."""

from __future__ import annotations

import numpy as np


def assert_ranks_identical(ranks: list[dict[str, np.ndarray]]) -> None:
    for rank, observed in enumerate(ranks[1:], start=1):
        assert observed.keys() == ranks[0].keys()
        for name, value in observed.items():
            assert np.array_equal(value, ranks[0][name]), f"rank {rank}'s {name} differs from rank 0's"


def assert_close(observed, reference, names, rtol, atol) -> None:
    for name in names:
        np.testing.assert_allclose(observed[name], reference[name], rtol=rtol, atol=atol, err_msg=name)


def weight_names(observed) -> list[str]:
    return sorted(name for name in observed if name.startswith("weight."))


def assert_float32_job_matches(two: list[dict[str, np.ndarray]], one: dict[str, np.ndarray]) -> None:
    """A float32 job's ranks, equal bit for bit, against one process within the kit's float32
    scenario tolerances (the sums' order differs between one process and two)."""
    from polynn.conformance.tolerances import scenario

    assert_ranks_identical(two)
    assert all(two[0][name].dtype == np.float32 for name in weight_names(one))
    tolerance = scenario("float32")
    step, weights = tolerance["step_loss"], tolerance["final_weights"]
    assert_close(two[0], one, ["step_loss_means", "history.loss", "history.val_loss"], step.rtol, step.atol)
    assert_close(two[0], one, weight_names(one), weights.rtol, weights.atol)
