"""RQ job functions of the benchmarks (workers import them as `bench.tasks.<name>`)."""


def noop() -> None:
    """The baseline of bench 3: an RQ job that does nothing."""
