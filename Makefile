# Set-up is one stamp file: `make demo` and `make test` both install once, then reuse the venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.maskcls-installed

.PHONY: install browser demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, from pip (uv/poetry would download a 3 GB CUDA build); then the package.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/maskcls demo

# The review-page test drives Debian's chromium + chromedriver. Install them where we can (root with
# apt-get); anywhere else say so and go on: that test then skips (or fails under CI, which must run it).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
			|| echo "could not install chromium; the review-page test will be skipped"; \
	else echo "chromium/chromedriver not found and not installable here; the review-page test will be skipped"; fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# One throughput benchmark: `maskcls bench` (model alone, cached photos, decoding, as ratios) on small
# synthetic data made once; then the targets of the speed work.
bench: $(STAMP)
	@test -f bench-data/train/train.csv || $(BIN)/maskcls demo-data bench-data --people 32 --eval-people 0 --size 96x128
	$(BIN)/maskcls bench bench-data
	$(BIN)/python benchmarks/bench_targets.py

clean:
	rm -rf $(VENV) demo-output bench-data site .pytest_cache
