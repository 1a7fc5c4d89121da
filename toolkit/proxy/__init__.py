"""The policy served by a LiteLLM proxy, and the proxy's traffic in routekit's route log.

- :mod:`toolkit.proxy.export` compiles a policy into a proxy config (``routekit export litellm-proxy``): one model
  group per intent, the route chain as the proxy's fallbacks, SDK retries off, cooldown from the circuit
  settings, Redis when the policy's state names one — and lists the rules the proxy cannot hold.
- :mod:`toolkit.proxy.callback` is the callback the export configures (``litellm_settings.callbacks``): one
  routekit route record per proxied request, through the same record builder and writer as the Router, and the
  served model and ``x-routekit-*`` headers on the answer.

Neither imports litellm at import time (the callback builds its class on first use, inside the proxy).
"""
