"""Token selection for the probes: right columns, and a memory-mapped split stays unread until used."""

import numpy as np
import pandas as pd
import pytest

from medprobe.stages.probe import mean_over_instances, select_tokens

TOKENS = ["cls", "patch_mean", "cls_block-2"]


@pytest.fixture
def mapped(tmp_path):
    array = np.arange(5 * 3 * 4, dtype=np.float16).reshape(5, 3, 4)
    np.save(tmp_path / "train.npy", array)
    return array, np.load(tmp_path / "train.npy", mmap_mode="r")


@pytest.mark.parametrize("which, columns", [("all", [0, 1, 2]), ("cls", [0]), ("patch_mean", [1]),
                                            ("cls_last_n", [0, 2])])
def test_selected_tokens_are_the_named_ones_concatenated(mapped, which, columns):
    array, mm = mapped
    chosen = select_tokens(mm, TOKENS, which)
    np.testing.assert_array_equal(chosen, array[:, columns].reshape(5, -1))
    assert chosen.dtype == np.float16


@pytest.mark.parametrize("which", ["all", "cls", "patch_mean"])
def test_adjacent_tokens_stay_a_view_of_the_memory_map(mapped, which):
    _, mm = mapped
    assert np.shares_memory(select_tokens(mm, TOKENS, which), mm)


def test_unknown_token_names_what_the_backbone_wrote(mapped):
    with pytest.raises(ValueError, match=r"'register_0' not available.*patch_mean"):
        select_tokens(mapped[1], TOKENS, "register_0")
    with pytest.raises(ValueError, match="need CLS tokens"):
        select_tokens(mapped[1][:, 1:2], ["patch_mean"], "cls_last_n")


def test_mean_over_a_memory_map_equals_the_mean_in_memory(mapped):
    array, mm = mapped
    part = pd.DataFrame({"tile_start": [0, 1], "tile_stop": [1, 5]})
    pooled = mean_over_instances(select_tokens(mm, TOKENS, "all"), part)
    np.testing.assert_array_equal(pooled, mean_over_instances(array.reshape(5, -1).astype(np.float32), part))
    assert pooled.dtype == np.float32
