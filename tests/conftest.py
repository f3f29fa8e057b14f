"""Plugins every test area can use (modules of tests/helpers): the real registries of
registryhelp.py, the `store` fixture of storehelp.py (one per snapshotter) and the `llb_root`
fixture of solvehelp.py (an llb root for the CLI, one per snapshotter) and the
`no_deep_leftovers` fixture of deephelp.py (for tests that make trees too deep for pytest's
own clean-up), and hangcheck.py's guards (a test leaving a thread running fails; a process
stuck at exit prints its stacks and ends)."""

pytest_plugins = ["registryhelp", "storehelp", "solvehelp", "deephelp", "hangcheck"]
