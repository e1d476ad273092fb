"""``cnnx bench models``: the PyTorch twins are the same networks, and the suite runs."""
import argparse

import pytest

import cnnx
from cnnx.bench import models as bench_models

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name,kwargs,size", [("lenet5", {}, 32), ("resnet18", {"small_input": True}, 32),
                                              ("mobilenet_v1", {"small_input": True, "width_mult": 0.25}, 32),
                                              ("googlenet", {}, 64)])
def test_torch_twin_has_the_same_names_and_outputs(name, kwargs, size):
    case = bench_models.Case(name, name, kwargs, 2, size, 1)
    model, twin = bench_models._pair(case, torch, 2)  # raises when the outputs differ
    assert list(model.state_dict()) == list(twin.state_dict())
    assert type(twin).__mro__[1] is not cnnx.nn.Module and isinstance(twin, torch.nn.Module)


def test_models_suite_runs_and_reports_images_per_second():
    args = argparse.Namespace(case="lenet5", threads=1, rounds=1, markdown=True, mode="both", peak_memory=False)
    text = bench_models.run(args)
    lines = text.splitlines()
    assert lines[0].startswith("| case | mode | batch | cnnx img/s | torch img/s")
    assert [line.split("|")[2].strip() for line in lines[2:]] == ["train", "infer"]
    with pytest.raises(SystemExit, match="no case"):
        bench_models.run(argparse.Namespace(**{**vars(args), "case": "nope"}))
