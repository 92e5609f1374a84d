# jailsync: build, generate, verify, test.
#
# Tools are built from the Go module proxy into bin/ and rebuilt only when
# missing; the envtest control plane (kube-apiserver, etcd, kubectl) is built
# from source by hack/setup-envtest.sh into bin/k8s/$(K8S_VERSION)/.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN               := $(CURDIR)/bin
K8S_VERSION       ?= 1.37.2
CONTROLLER_TOOLS  ?= v0.23.0
HELM_VERSION      ?= v4.3.1
CONTROLLER_GEN    := $(BIN)/controller-gen
HELM              := $(BIN)/helm
ENVTEST_ASSETS    := $(BIN)/k8s/$(K8S_VERSION)
GO_TEST_FLAGS     ?=
CHART_CRDS        := charts/jailsync/crds

export GOTOOLCHAIN := local

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/ and the chart's CRDs.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=agent-role paths=./nodeagent/ output:rbac:artifacts:config=config/rbac/agent
	rm -rf $(CHART_CRDS) && mkdir -p $(CHART_CRDS) && cp config/crd/bases/*.yaml $(CHART_CRDS)/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: fmt
fmt: ## Run gofmt on the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet for Linux and FreeBSD.
	go vet ./...
	GOOS=freebsd GOARCH=amd64 go vet ./...

.PHONY: verify
verify: manifests generate ## Fail on stale generated code, gofmt or vet findings, or a broken FreeBSD build.
	@stale=$$(git status --porcelain -- api config charts/jailsync/crds); \
	if [[ -n "$$stale" ]]; then echo "generated files are stale; run 'make manifests generate' and commit:"; echo "$$stale"; git --no-pager diff --stat -- api config charts; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt wants changes in:"; echo "$$unformatted"; exit 1; fi
	$(MAKE) vet
	GOOS=freebsd GOARCH=amd64 go build ./...
	GOOS=freebsd GOARCH=arm64 go build ./...
	go mod tidy -diff

##@ Test

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl v$(K8S_VERSION) from source into bin/k8s/ (once).
	hack/setup-envtest.sh

.PHONY: test
test: envtest ## Run all tests: unit tests with -race, envtest suites against a real API server, then the end-to-end packages one at a time.
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test -race -count=1 $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/test/')
	go test -race -count=1 -p 1 $(GO_TEST_FLAGS) ./test/...

.PHONY: stress
stress: ## Randomized convergence stress of real agents, every scenario (test/e2e/stress_linux_test.go; not part of make test: minutes per seed).
	go test -tags stress -race -count=1 -run 'TestStress_(RotatingWriter|RotatingWriterLoose|DisjointWriters|Kill9|Crossing)$$' -timeout 60m ./test/e2e/

.PHONY: bench
bench: ## Run the benchmarks against their references (not part of make test; needs root).
	hack/bench.sh

##@ Build

.PHONY: build
build: ## Build the manager and the node agent into bin/.
	go build -o $(BIN)/manager ./cmd/manager
	go build -o $(BIN)/nodeagent ./cmd/nodeagent

.PHONY: run
run: envtest build ## Run the controller against a local control plane built by hack/ (Ctrl-C stops it).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go run ./hack/localcluster -crds config/crd/bases -samples config/samples -- $(BIN)/manager --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS)

$(HELM):
	GOBIN=$(BIN) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-12s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
