"""Plugins every test area can use: the real registries of tests/helpers/registryhelp.py."""

pytest_plugins = ["registryhelp"]
