"""ACC, BWT, FWT on hand-made accuracy matrices; the CSV layout of R."""

from __future__ import annotations

import pytest

from tinysubnets.metrics import average_accuracy, backward_transfer, forward_transfer
from tinysubnets.runs import accuracy_matrix_csv

R = [[90.0], [85.0, 80.0], [70.0, 75.0, 60.0]]


def test_acc_and_bwt() -> None:
    assert average_accuracy(R) == pytest.approx((70 + 75 + 60) / 3)
    assert backward_transfer(R) == pytest.approx(((70 - 90) + (75 - 80)) / 2)
    assert backward_transfer([[50.0]]) == 0.0


def test_fwt_against_random_init() -> None:
    before = [None, 20.0, 30.0]
    baseline = [10.0, 10.0, 12.0]
    assert forward_transfer(before, baseline) == pytest.approx(((20 - 10) + (30 - 12)) / 2)
    assert forward_transfer([None], [10.0]) is None
    # A partial run (fewer tasks measured than baselines) uses what is there.
    assert forward_transfer([None, 20.0], baseline) == pytest.approx(10.0)


def test_accuracy_matrix_csv() -> None:
    lines = accuracy_matrix_csv(R).splitlines()
    assert lines[0] == "trained\\tested,task0,task1,task2"
    assert lines[1] == "task0,90.00,,"
    assert lines[3] == "task2,70.00,75.00,60.00"
