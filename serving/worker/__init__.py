"""One worker's state: the live controller following the registry (``controller``), loading a
version (``loading``), keys and limits (``access``, ``limits``), the prediction cache
(``cache``, ``cache_redis``), traffic profiles (``profile``, ``profiler``) and Prometheus
series (``metrics``), held together by the ``runtime`` the HTTP layer reads."""
