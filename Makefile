# pushsms: bulk SMS to Orange France over UCP, on NATS JetStream.
#
#   make run     start the whole platform on this machine (embedded NATS,
#                private PostgreSQL, SMSC simulator, the five services)
#   make test    run every test (needs PostgreSQL binaries: apt-get install postgresql)

SHELL := /bin/bash
GO    ?= go
# Each module of the workspace, in dependency order.
MODULES := proto lib services/ingest services/compliance services/throttle services/smsc-link services/billing cmd e2e
SERVICES := ingest compliance throttle smsc-link billing
BUF := GOWORK=off $(GO) tool -modfile=$(CURDIR)/tools/buf/go.mod buf
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: all run build test test-short lint vet fmt-check generate generate-check fuzz bench loadbench chaos tidy clean interop numplan-data \
	k8s-lint k8s-schemas images images-test test-ipsec observability-check e2e-jaeger k8s-verify

all: build

## run: build and start everything on one machine; data under ./var
run:
	@mkdir -p bin
	cd cmd && $(GO) build -o ../bin/devstack ./devstack
	./bin/devstack -dir var

## build: every binary into ./bin
build:
	@mkdir -p bin
	@for s in $(SERVICES); do \
		(cd services/$$s && $(GO) build -o ../../bin/$$s ./cmd/$$s) || exit 1; \
	done
	cd cmd && $(GO) build -o ../bin/ ./pushsms ./smsc-sim ./devstack

## test: every module's tests, with the race detector
test:
	@set -e; for m in $(MODULES); do \
		echo "== $$m"; \
		(cd $$m && $(GO) test $(TEST_FLAGS) ./...); \
	done

## lint: buf lint, gofmt, go vet everywhere, each module building on its own (GOWORK=off), deploy/k8s validated
lint: vet fmt-check k8s-lint
	cd proto && $(BUF) lint
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) build ./...); done

vet:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/gen/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## k8s-lint: render deploy/k8s's overlays and validate them strictly against deploy/k8s/schemas, offline;
## every manifest of deploy/k8s/testdata/broken must be rejected (deploy/k8s/lint.sh)
k8s-lint:
	cd tools/k8s && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test ./...
	deploy/k8s/lint.sh
	@# The Dockerfile, the daemonless image layout and deploy/k8s agree (tools/image).
	cd tools/image && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 -run 'TestDockerfile|TestManifests' ./...

## k8s-schemas: regenerate deploy/k8s/schemas from the Kubernetes, KEDA and CloudNativePG sources (Go module proxy)
k8s-schemas:
	deploy/k8s/schemas.sh

## k8s-verify: server-side dry-run of every deploy/k8s overlay against a real kube-apiserver + etcd built from the
## Go module proxy and cached in ~/.cache/pushsms/k8s-verify (first run ~10 min); testdata/refused must be refused (not in CI)
k8s-verify:
	scripts/k8s-verify.sh

## images: the five services' images (and smsc-sim's) without a Docker daemon, into bin/images, each run in its image as 65532 (docs/images.md)
images:
	scripts/images.sh

## images-test: tools/image's tests (image layout, static check, run inside the image, Dockerfile and deploy/k8s agree)
images-test:
	cd tools/image && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...

## observability-check: promtool: alert rules parse, their unit tests pass, dashboard queries parse (scripts/check-observability.sh)
observability-check:
	scripts/check-observability.sh

## e2e-jaeger: the one-machine platform traces to a real Jaeger (all-in-one built from its Go module by tools/jaeger, cached in ~/.cache/pushsms/jaeger); one campaign message's trace holds spans of the five services, rooted at ingest, no MSISDN (needs PostgreSQL binaries; not in CI: the first build takes minutes)
e2e-jaeger:
	GO=$(GO) scripts/e2e-jaeger.sh

## test-ipsec: smsc-link ↔ smsc-sim through a strongSwan IKEv2/ESP tunnel between two network namespaces; the capture shows only IKE/ESP; fails closed (root; SKIPs otherwise; docs/ipsec.md)
test-ipsec:
	scripts/test-ipsec.sh

## generate: regenerate proto/gen with buf and local plugins (no network)
generate:
	cd proto && $(BUF) generate

## generate-check: fail if the committed generated code is stale
generate-check: generate
	@git diff --exit-code -- proto/gen || (echo "proto/gen is stale: run make generate and commit"; exit 1)

## fuzz: run each fuzz target briefly (FUZZTIME=10m for a real session)
FUZZTIME ?= 20s
FUZZ_PKGS = lib:./ucp lib:./gsm lib:./numplan lib:./smscsim lib:./calendar lib:./optout \
	lib:./rate lib:./shortcode \
	services/compliance:. services/compliance:./ported services/ingest:. services/smsc-link:. \
	services/throttle:. services/billing:.
fuzz:
	@set -e; for mp in $(FUZZ_PKGS); do mod=$${mp%%:*}; pkg=$${mp#*:}; \
		for f in $$(cd $$mod && $(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
			echo "== $$mod $$pkg $$f"; (cd $$mod && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg); \
		done; \
	done

## bench: library benchmarks
bench:
	cd lib && $(GO) test -run '^$$' -bench . -benchmem ./ucp/ ./gsm/ ./numplan/ ./optout/
	cd services/compliance && $(GO) test -run '^$$' -bench . -benchmem . && $(GO) test -run '^$$' -bench 'Operator|Load' -benchmem ./ported/
	cd services/billing && $(GO) test -run '^$$' -bench 'Ingest|RecordBatch' -benchtime 100000x . && \
		$(GO) test -run '^$$' -bench 'DailyCountsMonth|BuildInvoice10M' -timeout 20m .

## loadbench: the platform as separate processes, then Kannel, on the same simulator (docs/loadbench.md)
LOADBENCH_FLAGS ?= -shortcodes 4 -messages 2000 -unthrottled -kannel
loadbench:
	cd cmd && $(GO) run ./loadbench $(LOADBENCH_FLAGS)

## chaos: the chaos suite (docs/chaos.md): 3 runs in a row of cmd/loadbench -chaos at issue 8's size (100 000 messages a run, about 8 min each), each on a quiet machine; CHAOS_ARGS to change it (e.g. CHAOS_ARGS="-messages 20000" for a quicker check)
CHAOS_ARGS ?= -messages 100000 -pace 300 -rate 150 -settle 10m
chaos:
	scripts/chaos.sh $(CHAOS_ARGS)

## numplan-data: refresh lib/numplan/data from ARCEP's MAJNUM extract (MAJNUM=file, see lib/numplan/data/README.md)
MAJNUM ?= ../shared/data/arcep-majnum/majournums.raw.csv
numplan-data:
	$(GO) run ./lib/numplan/cmd/majnum-gen -in $(MAJNUM) -out lib/numplan/data/majnum-0607.txt
	cd lib && $(GO) test ./numplan/...

## interop: Kannel (bearerbox + smsbox, smsc = emi) against smsc-sim, 1000 SMS with DLRs; SKIPs without kannel
interop:
	scripts/interop/run.sh

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf bin
