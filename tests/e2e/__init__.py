"""End-to-end tests: real server processes on loopback (a package, so its conftest and helpers
never shadow the top-level ``conftest`` module)."""
