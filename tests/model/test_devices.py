"""Device names from the command line."""

import pytest
import torch

from corridorkey_model.devices import parse_device


def test_cpu_is_accepted():
    assert parse_device(" cpu ") == torch.device("cpu")


@pytest.mark.parametrize("text,message", [("gpu", "not a torch device"), ("meta", "only cpu and cuda"),
                                          ("cuda:x", "not a torch device")])
def test_bad_names_say_what_to_use(text, message):
    with pytest.raises(ValueError, match=message):
        parse_device(text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA message cannot show")
def test_cuda_without_a_gpu_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no CUDA; use cpu"):
        parse_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_index_beyond_the_devices_is_refused():
    with pytest.raises(ValueError, match="CUDA device"):
        parse_device(f"cuda:{torch.cuda.device_count()}")
