"""Observability shared by every role: the node's HTTP endpoint (Prometheus metrics, health, status page).

    http.py    the asyncio HTTP/1.1 server (GET only, bounded, one request per connection)
    node.py    what a node serves: /metrics, /healthz/live, /healthz/ready, /api/status, /ui
    status.py  pure: a metadata image -> the cluster part of /api/status
    ui.html    the self-updating status page

The role-specific parts (Prometheus collectors, readiness, the role's status) live in
broker/metrics.py and controller/metrics.py; the entry point (`brook server`) wires them together.
"""
