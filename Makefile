# swift-loops — every entry point installs what it needs first.
SWIFT ?= swift

.PHONY: all demo test build bench system-packages clean

all: build

system-packages:
	@bash scripts/install-system-packages.sh

build: system-packages
	$(SWIFT) build

## The main job: runs the disnake.ext.tasks recipes with short intervals (exits in ~8 s).
demo: system-packages
	$(SWIFT) run LoopsDemo

## The whole test suite (virtual-time semantics, real-timer integration, parsers, CLI).
test: system-packages
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

clean:
	rm -rf .build
