# Brook: every target bootstraps its own environment from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROTOS := $(wildcard proto/*.proto)

.PHONY: help venv proto proto-check run test test-unit test-integration compat compat-jvm chaos chaos-mutants sim sim-mutants bench bench-cluster bench-peers bench-profile lint secrets up down clean fuzz

help:
	@echo "make run    - start a local 3-controller, 3-broker cluster (Ctrl-C stops it); SECURE=1: TLS+SCRAM+ACLs, gRPC mTLS"
	@echo "make test   - bootstrap the venv and run every test"
	@echo "make compat - the client/tool compatibility matrix (docs/COMPATIBILITY.md)"
	@echo "make compat-jvm - Kafka Streams, Kafka Connect and MirrorMaker 2 against real clusters (also in make test)"
	@echo "make bench  - storage, cluster and scale benchmarks (SCALE=1 adds the 10,000-partition row, several minutes)"
	@echo "make bench-cluster - only the issue-12 table (throughput, paced latency, failover, RSS) and the CPU per record of each process"
	@echo "make bench-peers - the same workload against Apache Kafka 4.4.0 (KRaft) and NATS JetStream R3"
	@echo "make bench-profile - py-spy flame graphs of a leader and a follower under acks=all (WORKLOAD=paced|full|full-1k)"
	@echo "make chaos  - 10 minutes of random faults against a local cluster"
	@echo "make sim    - deterministic simulation: SEEDS=N runs seeds 1..N, SEED=n replays one seed verbosely"
	@echo "make fuzz   - 10 minutes of the Kafka-protocol fuzzer under a memory cap"
	@echo "make chaos-mutants - brook chaos against each deliberately broken build: the detection table"
	@echo "make sim-mutants - the simulator against each broken build: seeds until the first violation"
	@echo "make lint   - ruff and mypy"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(STAMP)

venv: $(STAMP)

# Regenerate the gRPC/protobuf stubs into brookpb/ (committed; `make proto-check` fails if stale).
proto: $(STAMP)
	$(BIN)/python proto/gen.py brookpb

proto-check: $(STAMP)
	$(BIN)/python proto/gen.py --check brookpb

run: $(STAMP)
	$(BIN)/brook dev --controllers 3 --brokers 3 --data-dir $(if $(SECURE),.data/dev-secure --secure,.data/dev)

test: $(STAMP) proto-check
	$(BIN)/python -m pytest -q --durations=40 tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# Java/Go/Node clients and Kafka's tools against a real cluster; builds are cached in .cache/compat/.
compat: $(STAMP)
	$(BIN)/python -m pytest -q tests/compat

# Kafka Streams (exactly_once_v2), Connect (distributed, FileStream) and MirrorMaker 2; `make test` runs them too.
compat-jvm: $(STAMP)
	$(BIN)/python -m pytest -q --durations=5 tests/compat/test_jvm_apps.py

# The cluster `make run` runs, else its own, in network namespaces when they work here (root: the nemesis
# also cuts links; brook chaos's --network auto). NETWORK=netns forces a fresh cluster in namespaces,
# NETWORK=none none; SUBNET=10.124.0 for runs side by side. DURATION overrides the 600 s; CONCURRENCY
# the rounds at once.
chaos: $(STAMP)
	$(BIN)/brook chaos run --scenario random --duration $${DURATION:-600s} --seed $${SEED:-1} \
		$(if $(NETWORK),--fresh --network $(NETWORK))$(if $(SUBNET), --subnet $(SUBNET))$(if $(CONCURRENCY), --concurrency $(CONCURRENCY))

# Deterministic simulation (tests/sim, docs/CHAOS.md). The last line is "N seeds, V violations".
sim: $(STAMP)
	$(BIN)/python -m tests.sim.run $(if $(SEED),--seed $(SEED),--seeds $(or $(SEEDS),1000))

# Each mutant of tests/mutants/brook_mutants.py in the simulator: seeds until the first violation
# (at most SEEDS, the CI budget of 2000 by default); the table is docs/CHAOS.md's.
sim-mutants: $(STAMP)
	$(BIN)/python -m tests.sim.run --detect --mutant $${MUTANT:-all} --seeds $${SEEDS:-2000} --workers 2

# The Kafka-protocol fuzzer under a 1.5 GiB address-space cap (CI runs 25 s of it in the unit tests).
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.kafka_fuzz --seconds $${FUZZ_SECONDS:-600} --seed $${SEED:-1} --memory-mb 1536 --verbose

# Each mutant (tests/mutants/brook_mutants.py) and the normal build: random scenario, one seed, a
# budget per run (300 s of faults, 600 s of wall time: about two hours for the table). MUTANTS=a,b,normal runs only those; DURATION, SEED, BUDGET override the defaults.
chaos-mutants: $(STAMP)
	$(BIN)/python tests/mutants/table.py --duration $${DURATION:-300s} --seed $${SEED:-35} \
		--budget $${BUDGET:-600} $${MUTANTS:+--only $$MUTANTS}

bench: $(STAMP)
	$(BIN)/python -m bench.storage_bench
	$(BIN)/python -m bench.cluster_bench
	$(BIN)/python -m bench.security_bench
	$(BIN)/python -m bench.scale_bench $(if $(SCALE),--partitions 100 --partitions 1000 --partitions 10000)

bench-cluster: $(STAMP)
	$(BIN)/python -m bench.cluster_bench

# py-spy (a dev dependency) samples the brokers; flame graphs and top frames go to profiles/.
bench-profile: $(STAMP)
	$(BIN)/python -m bench.profile --workload $${WORKLOAD:-paced} --out profiles

# Fetches the Kafka jars (Maven Central) and builds nats-server + a Go client (Go proxy) into .cache/peers.
bench-peers: $(STAMP)
	$(BIN)/python -m bench.peers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy cluster controller broker storage

# One-time, before the first `make up`: the CA, node and admin certificates, the quorum secret and the admin
# password that deploy/compose.yaml mounts as secrets (deploy/secrets/; existing files are kept).
secrets: $(STAMP)
	BROOK="$(BIN)/brook" sh deploy/make-secrets.sh deploy/secrets

up:
	docker compose -f deploy/compose.yaml up -d

down:
	docker compose -f deploy/compose.yaml down

clean:
	rm -rf $(VENV) .data .cache *.egg-info
