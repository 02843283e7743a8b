"""The test suite, by layer: ring/, core/, cluster/, redis/, cli/; helpers in support/."""
