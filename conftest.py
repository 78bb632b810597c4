"""Two tiers of tests. `pytest` alone runs the fast tier: the package's math, parity and errors,
in well under two minutes. `pytest --complete` (the README's test command and CI, through
`bash scripts/setup.sh test`) adds the slow tier: every notebook run top to bottom (nbval), the
real-browser tests and the tests that start training processes."""


def pytest_addoption(parser):
    parser.addoption(
        "--complete",
        action="store_true",
        help="also run the slow tier: notebooks, browser, training processes",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--complete"):
        return
    slow, fast = [], []
    for item in items:
        notebook = item.path.suffix == ".ipynb"
        (slow if notebook or item.get_closest_marker("slow") else fast).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = fast
