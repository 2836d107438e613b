"""`needs_extra`: a missing package of an extra names the extra; anything else passes through."""

import pytest

from ttc_agent.errors import TTCError
from ttc_agent.extras import EXTRAS, MissingExtraError, needs_extra


def test_a_missing_package_of_an_extra_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"PRMVerifier needs torch, which comes with ttc-agent's \[local\]"):
        with needs_extra("local", "PRMVerifier"):
            raise ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")
    assert issubclass(MissingExtraError, ImportError) and issubclass(MissingExtraError, TTCError)


def test_other_missing_modules_and_unknown_extras_pass_through():
    with pytest.raises(ModuleNotFoundError, match="left_pad"), needs_extra("local"):
        raise ModuleNotFoundError("No module named 'left_pad'", name="left_pad")
    with pytest.raises(ValueError, match="unknown extra 'gpu'"), needs_extra("gpu"):
        pass


def test_every_extra_in_pyproject_is_known_here():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(EXTRAS) <= set(extras) and set(extras) - set(EXTRAS) == {"all", "dev"}
