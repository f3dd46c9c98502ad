"""The registry: every listed name builds the right density; bad names and options fail clearly."""
from __future__ import annotations

import pytest

from ctflows.data import ToyDensity, get_density, list_densities
from ctflows.errors import ConfigurationError

NAMES = {
    "eight_gaussians": 2, "checkerboard": 2, "rings": 2, "circles": 2, "two_moons": 2, "swiss_roll": 2,
    "two_spirals": 2, "pinwheel": 2, "gaussian_mixture": 16, "funnel": 10, "twisted_gaussian": 8, "many_well": 8,
}


def test_list_densities_names_and_descriptions() -> None:
    listed = list_densities()
    assert set(listed) == set(NAMES)
    for name, description in listed.items():
        assert description and "\n" not in description and len(description) < 120, name
    for dim in (2, 8, 3, 1):  # 1: no density
        assert list(list_densities(dim=dim)) == [name for name, d in NAMES.items() if d == dim]


@pytest.mark.parametrize("dim", [0, -2, "2", 2.0, True], ids=["zero", "negative", "str", "float", "bool"])
def test_a_dim_that_is_no_dimension_is_refused_not_an_empty_list(dim: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^list_densities: dim must be an int >= 1, got"):
        list_densities(dim=dim)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_get_density_builds_the_named_density(name: str) -> None:
    d = get_density(name)
    assert isinstance(d, ToyDensity) and d.name == name and d.dim == NAMES[name]
    assert d.description == list_densities()[name]
    assert name in repr(d)


def test_any_dim_densities_take_dim() -> None:
    for name, dim in [("gaussian_mixture", 3), ("funnel", 7), ("twisted_gaussian", 4), ("many_well", 12)]:
        assert get_density(name, dim=dim).dim == dim


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown density 'moons'.*two_moons.*many_well"):
        get_density("moons")


@pytest.mark.parametrize("name", [None, ["two_moons"], ("funnel",), b"funnel"], ids=["none", "list", "tuple", "bytes"])
def test_a_name_that_is_not_a_string_is_an_unknown_density(name: object) -> None:
    """Only a str names a density: a list (unhashable) was a TypeError, a tuple or bytes must not match either."""
    with pytest.raises(ConfigurationError, match=r"unknown density .*; known densities: eight_gaussians, .*many_well"):
        get_density(name)  # type: ignore[arg-type]


def test_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="two_moons.*accepts: none"):
        get_density("two_moons", dim=3)
    with pytest.raises(ConfigurationError, match="funnel.*accepts: dim"):
        get_density("funnel", width=3)
