"""The knob spec against docs/DESIGN.md §4 (the Nuke contract), and its checks."""

import json

import pytest

from corridorkey_model.keying.knobs import KNOBS, KNOBS_BY_NAME, KnobSpec, knob_table_markdown


def test_spec_is_the_nuke_contract():
    # docs/DESIGN.md §4: despill_strength float 0-10 default 0; gamma_input int enum 0 sRGB / 1 Linear, default 0;
    # refiner_strength float 0-1 default 1; issue 12: despeckle_size int pixels, 0 = off, default 0, label
    # "Despeckle", a maximum in the thousands; issue 22: auto_hint int enum 0 hint input / 1 automatic, default 0;
    # issue 30: 2 = the automatic hint times a garbage matte (the hint channel).
    got = {k.name: (k.kind, k.minimum, k.maximum, k.default, k.choices) for k in KNOBS}
    assert got == {
        "despill_strength": ("float", 0, 10, 0, None),
        "gamma_input": ("int", 0, 1, 0, ("sRGB", "Linear")),
        "refiner_strength": ("float", 0, 1, 1, None),
        "despeckle_size": ("int", 0, 10000, 0, None),
        "auto_hint": ("int", 0, 2, 0, ("Hint Input", "Automatic", "Automatic x garbage matte")),
    }
    assert KNOBS_BY_NAME["despeckle_size"].label == "Despeckle"
    assert isinstance(KNOBS_BY_NAME["despeckle_size"].typed_default, int)
    assert isinstance(KNOBS_BY_NAME["gamma_input"].typed_default, int)
    assert isinstance(KNOBS_BY_NAME["refiner_strength"].typed_default, float)


@pytest.mark.parametrize("name,value", [("despill_strength", 10.5), ("despill_strength", -0.1),
                                        ("refiner_strength", 1.01), ("gamma_input", 2), ("gamma_input", 0.5),
                                        ("gamma_input", "linear"), ("despeckle_size", -1),
                                        ("despeckle_size", 10001), ("despeckle_size", 2.5)])
def test_check_refuses_out_of_range_and_wrong_type(name, value):
    with pytest.raises(ValueError, match=name):
        KNOBS_BY_NAME[name].check(value)


def test_check_returns_typed_values():
    assert KNOBS_BY_NAME["gamma_input"].check(1.0) == 1 and isinstance(KNOBS_BY_NAME["gamma_input"].check(1.0), int)
    assert KNOBS_BY_NAME["despill_strength"].check(5) == 5.0


def test_inconsistent_spec_is_refused():
    with pytest.raises(ValueError, match="outside"):
        KnobSpec("x", "float", 2.0, 0.0, 1.0, "X", "")
    with pytest.raises(ValueError, match="kind"):
        KnobSpec("x", "bool", 0, 0, 1, "X", "")
    with pytest.raises(ValueError, match="one choice per value"):
        KnobSpec("x", "int", 0, 0, 2, "X", "", choices=("a", "b"))


def test_to_dict_is_json_and_table_lists_every_knob():
    data = json.loads(json.dumps([k.to_dict() for k in KNOBS]))
    assert [d["name"] for d in data] == [k.name for k in KNOBS]
    table = knob_table_markdown().splitlines()
    assert len(table) == 2 + len(KNOBS)
    for k, row in zip(KNOBS, table[2:]):
        assert f"`{k.name}`" in row and k.tooltip in row
