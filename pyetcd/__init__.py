"""pyetcd: etcd, the distributed reliable key-value store, written in Python."""

# The etcd release whose behaviour pyetcd reproduces; `version` commands and /version report it.
ETCD_VERSION = "3.5.1"
API_VERSION = "3.5"
