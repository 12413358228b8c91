# mirrorlet — run `make help` for the targets.
SHELL := /usr/bin/env bash
# Go's own install location, also under sudo (whose secure_path leaves it out).
export PATH := /usr/local/go/bin:$(PATH)
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := bin
PKG := github.com/mirrorlet/mirrorlet
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X $(PKG)/cmd/mirrorlet/app.Version=$(VERSION) \
	-X $(PKG)/cmd/mirrorlet/app.GitCommit=$(COMMIT) \
	-X $(PKG)/cmd/mirrorlet/app.BuildDate=$(DATE)
# Packages that need no API server or runtime (test/deploy: the install
# script, units, configs and the Dockerfile build; test/bench: the
# harness's own checks, the benchmark itself only runs with make bench).
UNIT_PKGS := ./apibackoff/... ./cmd/... ./contentwatch/... ./controllers/... ./filesafety/... ./logdir/... ./manifest/... ./nodeapi/... ./prober/... ./runtime/... ./test/deploy/... ./test/bench/
# The e2e tests that also run on Debian's containerd 1.6 (no CRI container
# events: the polling fallback): a pod's life on the node, and subPath bind
# mounts (1.6 is the default runtime of deploy/).
LIFECYCLE_E2E := ^Test(GracefulStopHonoursGracePeriod|GraceKeptOnTheNode|ManifestUpdateReplacesContainer|LabelEditKeepsContainer|RestartAdoptsRunningPods|ContainerdRestartIsSurvived|ImageNeverPulledGivesEvent|ContainerEventsOrPolling|SeedWalkthrough|ManifestURLDownAtBootRunsLastGoodPods|PauseKilledKeepsDataAndRestartCount|SubPathMountedFromResolvedDescriptor|SubPathMountKeptAcrossRestart)$$

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/mirrorlet with version information.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/mirrorlet ./cmd/mirrorlet

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl into the cache (minutes the first time).
	@hack/build-envtest.sh

.PHONY: containerd
containerd: ## Build containerd 2.x, its runc shim and ctr into the cache (minutes the first time).
	@hack/containerd.sh build

.PHONY: test
test: test-unit test-integration test-e2e test-e2e-containerd1.6 test-faults test-cluster ## Run every test: unit, integration (real kube-apiserver + etcd), e2e (+ containerd 2.x, and 1.6 for the lifecycle tests), the fault suite, cluster (+ kube-controller-manager and a kubelet) (needs root).

.PHONY: test-unit
test-unit: ## Run unit tests.
	$(GO) test -race -count=1 $(UNIT_PKGS)

.PHONY: test-integration
test-integration: ## Run integration tests against envtest (builds it first if needed), the security tests (RBAC + admission policies, Node,RBAC authorization, NodeRestriction) and the credential tests.
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 ./test/integration/... ./test/security/... ./test/credentials/...

.PHONY: test-e2e
test-e2e: ## Run end-to-end tests: mirrorlet binary + kube-apiserver + private containerd 2.x (built) + local registry (needs root).
	hack/containerd.sh install
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 -timeout 30m -v ./test/e2e/

.PHONY: test-e2e-containerd1.6
test-e2e-containerd1.6: ## Run the lifecycle end-to-end tests on Debian's containerd 1.6 (no CRI events: the runtime cache relists; needs root).
	hack/containerd.sh install
	MIRRORLET_CONTAINERD=1.6 KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 -timeout 20m -v -run '$(LIFECYCLE_E2E)' ./test/e2e/

.PHONY: test-faults
test-faults: ## Run the fault suite: API server down, mirrorlet killed, containerd restarted, manifest churn, mirror tug-of-war, log directory full (needs root; FAULTS_FULL=1 for the long variants).
	hack/containerd.sh install
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 -timeout 30m -v ./test/e2e/faults/

.PHONY: soak
soak: ## Run the 30-minute soak (not in CI): random edits, mirror deletes and container kills over 50 pods; RSS, goroutines, open files, sandboxes every minute (needs root; SOAK_DURATION to change).
	hack/containerd.sh install
	FAULTS_SOAK=1 KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 -timeout 60m -v -run '^TestSoak$$' ./test/e2e/faults/

.PHONY: kube
kube: ## Build kube-controller-manager and kubelet into the cache (minutes the first time).
	@hack/build-kube.sh

.PHONY: test-cluster
test-cluster: ## Run the cluster tests: mirrorlet with a real kube-controller-manager (GC, node lifecycle, taint eviction) and next to a real kubelet (needs root).
	hack/containerd.sh install
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" MIRRORLET_KUBE_ASSETS="$$(hack/build-kube.sh)" $(GO) test -count=1 -timeout 20m -v ./test/cluster/...

.PHONY: bench-e2e
bench-e2e: ## Measure manifest write -> container serving for 1 and 50 pods (needs root).
	hack/containerd.sh install
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 -timeout 30m -run '^$$' -bench . -benchtime 3x ./test/e2e/...

.PHONY: fuzz
fuzz: ## Fuzz the manifest decoders for FUZZTIME each (default 30s).
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(or $(FUZZTIME),30s) ./manifest/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePods$$' -fuzztime $(or $(FUZZTIME),30s) ./manifest/

.PHONY: lint
lint: ## Run go vet, gofmt and golangci-lint.
	$(GO) vet ./...
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	"$$(hack/install-tools.sh)/golangci-lint" run ./...

.PHONY: bench
bench: ## Run the benchmark of issue 12 (1/50 pods on containerd, 1,000 with the binary on a fake CRI, 100 agents); print its table, write test/bench/RESULTS.md (root for containerd; < 15 min).
	hack/containerd.sh install
	MIRRORLET_BENCH=1 KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -count=1 -timeout 20m -v -run '^TestBench$$' ./test/bench/

.PHONY: bench-go
bench-go: ## Run the Go benchmarks (testing.B) and print their figures.
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v -e /test/e2e -e /test/cluster -e /test/bench)

.PHONY: demo
demo: ## Run mirrorlet for real: local API server, runtime and the example static pod.
	hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop everything `make demo` started.
	hack/demo.sh down

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t mirrorlet:$(VERSION) .
