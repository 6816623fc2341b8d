"""The benchmark scripts, run from the repository root as ``python benchmarks/<script>.py`` (see
RESULTS.md); a package so that the tests import them as ``benchmarks.<script>``."""
