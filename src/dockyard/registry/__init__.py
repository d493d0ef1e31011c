"""The model registry: model packages, registered models, versions, aliases, lifecycle, gates.

Import-light on purpose: ``import dockyard.registry`` loads nothing heavy. The package layer
lives in :mod:`dockyard.registry.packaging`; the store-backed service in
:mod:`dockyard.registry.service`.
"""
