"""Serving: what an inference server does, free of any web framework.

The model pool, the router, the micro-batcher, the shadow dispatcher, the prediction log
(:mod:`dockyard.serving.predlog`) and the store of delayed ground-truth labels
(:mod:`dockyard.serving.labels`). Its HTTP face lives in :mod:`dockyard.server`.
"""
