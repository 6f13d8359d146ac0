# One virtual environment holds ganforge, both plugin distributions and the test tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganforge-installed

.PHONY: install demo test test-fast reference bench clean

$(STAMP): pyproject.toml plugins/dcgan/pyproject.toml plugins/cgan/pyproject.toml plugins/resnet/pyproject.toml \
		plugins/stylegan2/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch>=2.4,<2.15" "torchvision>=0.19,<0.30"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]" -e plugins/dcgan -e plugins/cgan -e plugins/resnet \
		-e plugins/stylegan2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ganforge train mlp --epochs 100 --ema 0.999 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/python -m pytest

# The unit tier: no slow, torchrun or CUDA tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not distributed and not cuda"

# docs/reference/ from the code (a test fails when it is out of date).
reference: $(STAMP)
	$(BIN)/python scripts/make_reference.py

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py --variants mlp dcgan

clean:
	rm -rf $(VENV) runs .pytest_cache
