"""The `dockyard` command line: thin Typer commands over the SDK client and the services."""
