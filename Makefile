# kubeha entry points. The README's two commands are `make demo` and `make test`.
# Each target calls a script that owns the work; this file only wires them together.
SHELL := /bin/bash
LAYOUT ?= pinned
export LAYOUT

.PHONY: freeze vip-freeze same-behaviour deps venv build build-aarch64 image testbed convert drill report demo test test-rust test-emulators \
        test-full test-collection test-molecule test-playbooks chaos bench clean clean-images

deps:            ## host packages (Debian) the build and the test bed need
	scripts/host-deps.sh

venv: deps       ## pinned Python tools in .venv/
	scripts/venv.sh

build: deps      ## release module binaries into the collection
	scripts/build-modules.sh

build-aarch64: deps  ## aarch64 module binaries into the collection's bin/aarch64 and build/kubeha-control_plane-<version>-aarch64.tar.gz
	scripts/build-modules.sh aarch64

image: deps      ## the test-bed node image (cached by recipe hash; make test builds the bullseye one itself)
	testbed/images/build.sh node

testbed: venv image   ## bring up the unconverted cluster: make testbed LAYOUT=pinned|kubespray|kubeadm|kubeadm-dns|novip
	testbed/up.sh $(LAYOUT)

convert: venv build   ## run playbooks/convert.yml against the running test bed
	testbed/convert.sh $(LAYOUT)

drill: venv build     ## the failover drill against the running test bed
	testbed/drill.sh $(LAYOUT)

demo: deps       ## all of it from scratch (module build beside venv, image and bed), ending with the before/after table and the drill
	testbed/demo.sh $(LAYOUT)

test:            ## every host-only test + per layout convert/again/drill/rollback on a bed from its snapshot (setup included)
	scripts/test-all.sh

test-full:       ## make test + every end-to-end check of test-playbooks.sh + molecule test per layout from scratch
	scripts/test-all.sh --full

test-playbooks: venv build image ## convert/rollback/hook end to end: make test-playbooks LAYOUT=pinned|kubespray|kubeadm|kubeadm-dns|novip
	testbed/up.sh $(LAYOUT) && scripts/test-playbooks.sh $(LAYOUT)

freeze: venv ## whole-host loss: master 1 frozen for 2 min on the running bed (make freeze LAYOUT=pinned EXPECT=survive|break)
	.venv/bin/python testbed/freeze.py $(LAYOUT) --expect $(or $(EXPECT),survive) $(if $(filter break,$(EXPECT)),--server-name kubernetes)

vip-freeze: venv ## the VIP holder frozen 5 times on the converted novip bed: unreachable seconds, failed probes, where the VIP goes (make vip-freeze PREEMPT=true|false; kubeha_vip_preempt's default is true)
	.venv/bin/python testbed/vip_freeze.py $(or $(LAYOUT),novip) --expect-preempt $(or $(PREEMPT),true)

same-behaviour: venv build image ## a refactoring changes nothing: make same-behaviour OTHER=<checkout with its modules built> [LAYOUT=pinned]
	.venv/bin/python scripts/same_behaviour.py $(OTHER) --layout $(LAYOUT)

chaos: venv build image ## reliability suites
	chaos/run.sh

bench: venv build image ## benchmarks, writes docs/benchmarks.md
	bench/run.sh

clean:           ## remove the test bed containers and network
	testbed/down.sh

clean-images: clean  ## drop the beds' snapshot images and the node images (the next bring-up installs afresh)
	testbed/images/clean.sh
