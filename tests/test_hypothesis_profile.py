"""Guards reproducible CI: property tests are derandomized unless asked not to be."""

import os

from hypothesis import settings


def test_property_tests_draw_the_same_examples_every_run():
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":
        assert settings.default.derandomize
