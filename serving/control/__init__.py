"""The operator's side, what ``cli`` and ``flows`` call: promotion and rollback (``rollout``),
the fleet's status (``status``), packaging a version into BentoML (``packaging``,
``bento_contents``), starting ``bentoml serve`` (``server``, ``daemon``), drift (``monitor``)."""
