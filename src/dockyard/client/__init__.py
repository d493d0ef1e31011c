"""The Python SDK: the fluent run API and the Client, local or remote."""
