"""The API's route modules, one per concern, each exposing an ``APIRouter`` named ``router``.

:mod:`~dockyard.server.routes.experiments`, :mod:`~dockyard.server.routes.runs`,
:mod:`~dockyard.server.routes.artifacts` and :mod:`~dockyard.server.routes.audit` are mounted
under ``/api/v1``; :mod:`~dockyard.server.routes.meta` (``/healthz``) at the root.
"""
