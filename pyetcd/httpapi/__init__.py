"""HTTP/1.1 on the client port: /health, /version, /metrics (later the /v3 gateway and /v2)."""
