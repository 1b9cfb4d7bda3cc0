# Two commands after cloning:  `make book`  and  `make test`.
# Both create the virtual environment (.venv, Python 3.11) when it is missing.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= $(or $(REIDLIB_PROFILE),book)
DEVICE ?= auto
# notebooks nbval re-runs and whose NBVAL_CHECK_OUTPUT cells it compares with papermill's outputs
NBVAL_CHAPTERS ?= 00 01 02

.PHONY: env book execute html test unit smoke nbval browser-check bench weights verify-weights clean

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import torch, torchvision, reidlib, jupyter_book, papermill, nbval"
	@touch $@

## make book: execute every chapter once with papermill (book profile: the committed weights,
## evaluated live, nothing trained), then build _build/html
book: env
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --device $(DEVICE)

execute: env
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --device $(DEVICE) --no-build

html: env
	$(BIN)/python tools/build_book.py --no-execute

## make test: the unit tests, every chapter in the smoke profile (the training check), and nbval
## on the light chapters
test: env unit smoke

unit: env
	$(BIN)/python -m pytest tests -q

smoke: env
	$(BIN)/python tools/run_nbval.py --execute-all --chapters $(NBVAL_CHAPTERS)

nbval: env
	$(BIN)/python tools/run_nbval.py --chapters $(NBVAL_CHAPTERS)

## make browser-check: open every page of the built book (_build/html, from `make book`) in
## headless Chromium with no network (tests/browser; needs /usr/bin/chromium: apt-get install chromium)
browser-check: env
	REIDLIB_BROWSER_CHECK=1 $(BIN)/python -m pytest tests/browser -q -p no:cacheprovider

## make weights: train every committed book model that is missing or stale (CPU hours; resumes)
weights: env
	$(BIN)/python -m reidlib weights train --all

verify-weights: env
	$(BIN)/python -m reidlib weights verify

bench: env
	$(BIN)/python -m reidlib bench eval
	$(BIN)/python -m reidlib bench synth

clean:
	rm -rf _build
