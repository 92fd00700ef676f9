"""The reference trainer's step plan: a stage that would overrun its wall-clock budget gets fewer
steps, decided early, so its learning-rate schedule still ends (the lent GPU stops at 10 minutes)."""

import time

from train_reference import StepPlan


def test_steps_are_cut_to_fit_the_budget_once_the_step_time_is_known():
    plan = StepPlan(100_000, budget_s=0.3)
    start = time.time()
    done = 0
    for _ in plan:
        time.sleep(0.002)
        done += 1
    assert done == plan.total < 100_000
    assert time.time() - start < 1.0


def test_no_budget_keeps_the_configured_count():
    assert sum(1 for _ in StepPlan(57, budget_s=0)) == 57
