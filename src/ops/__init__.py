"""ops: the operator's commands (``python -m ops``): the sweep, dead letters, usage.

The Kubernetes CronJob runs ``python -m ops sweep``; nothing here is served over HTTP.
"""
