"""Which neighbours a refusal lists, in what order (pure: the judged neighbours are data here;
tests/cli/test_names.py judges real ones against a local index)."""

from __future__ import annotations

from envctl.nearest import Neighbour, shown

TORCH, CUDA = "same torch, other CUDA", "same CUDA, older torch"
NEEDS = "needs conda-forge: unreachable here"


def test_the_nearest_that_works_here_leads_even_from_past_the_usual_three():
    judged = [Neighbour("pytorch-2.8-cu126", TORCH, 2, NEEDS), Neighbour("pytorch-2.8-cu128", TORCH, 2, NEEDS),
              Neighbour("pytorch-2.8-cu129", TORCH, 2, NEEDS), Neighbour("pytorch-2.7-cu118", CUDA, 2, NEEDS),
              Neighbour("pytorch-2.6-cu118", CUDA, 1, "not locked; locks and builds here"),
              Neighbour("pytorch-2.5-cu118", CUDA, 0, "locked, builds here")]
    listed = shown(judged)
    assert [n.name for n in listed] == ["pytorch-2.6-cu118", "pytorch-2.8-cu126", "pytorch-2.8-cu128",
                                        "pytorch-2.7-cu118"]
    assert listed[0].next_step == "envctl lock pytorch-2.6-cu118"


def test_a_neighbour_already_among_the_nearest_is_listed_once_and_first():
    judged = [Neighbour("pytorch-2.8-cu126", TORCH, 2, NEEDS), Neighbour("pytorch-2.8-cu128", TORCH, 0, "locked"),
              Neighbour("pytorch-2.7-cu118", CUDA, 2, NEEDS)]
    listed = shown(judged)
    assert [n.name for n in listed] == ["pytorch-2.8-cu128", "pytorch-2.8-cu126", "pytorch-2.7-cu118"]
    assert listed[0].next_step == "envctl build pytorch-2.8-cu128"


def test_when_nothing_works_here_the_nearest_three_stay_in_order():
    judged = [Neighbour(f"pytorch-2.8-cu12{i}", TORCH, 2, NEEDS) for i in (6, 8, 9)] \
        + [Neighbour("pytorch-2.7-cu118", CUDA, 2, NEEDS)]
    listed = shown(judged)
    assert [n.name for n in listed] == ["pytorch-2.8-cu126", "pytorch-2.8-cu128", "pytorch-2.7-cu118"]
    assert listed[0].next_step == "envctl show pytorch-2.8-cu126"
